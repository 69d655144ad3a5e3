//! **Projects**: the repositories you can see (`/dashboard/projects`), and
//! a page per repository at its path with its clone URL and the hint to
//! use a personal access token as the password. No code browser.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::layout;
use super::{html, session_of, with_conn, TOKENS};
use crate::app::App;
use crate::db::project::Project;
use crate::service::{access, repos};

/// The URL the clone commands name: the external URL, else the origin the
/// browser used.
fn base_url(app: &App, req: &HttpRequest) -> String {
    match &app.config.external_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => crate::http::request_origin(req, &app.settings()),
    }
}

pub async fn list(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let current = match session_of(&app, &req).await {
        Ok(c) => c.filter(|c| !c.row.two_factor_pending),
        Err(resp) => return resp,
    };
    let Some(current) = current else {
        return super::see_other(super::SIGN_IN);
    };
    let user = current.user.clone();
    let projects = match with_conn(&app, move |conn, _| {
        repos::visible_to(conn, Some(&user), crate::service::now().date_naive())
    })
    .await
    {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let csrf = current.csrf(&app);
    let body = html! {
        h1 { "Projects" }
        @if projects.is_empty() {
            p.muted { "You can see no project yet. A push to one of your own namespace's paths creates it." }
        } @else {
            table {
                thead { tr { th { "Project" } th { "Visibility" } th { "Description" } } }
                tbody {
                    @for p in &projects {
                        tr {
                            td data-label="Project" { a href={ "/" (p.path) } { (p.path) } }
                            td data-label="Visibility" { (p.visibility) }
                            td data-label="Description" { (p.description.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, layout::page("Projects", Some((&current, &csrf)), body))
}

/// `GET /<namespace>/<name>`: the project's page, when the caller may see
/// it; anything else is the plain 404 of unknown paths (whether a private
/// project exists is not told).
pub async fn show(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let path = req.match_info().get("path").unwrap_or_default().to_string();
    let Ok(repo_path) = crate::git::store::RepoPath::parse(&path) else {
        return crate::http::not_found().await;
    };
    let current = match session_of(&app, &req).await {
        Ok(c) => c.filter(|c| !c.row.two_factor_pending),
        Err(resp) => return resp,
    };
    let user = current.as_ref().map(|c| c.user.clone());
    let wanted = repo_path.as_str().to_string();
    let found = with_conn(&app, move |conn, _| -> crate::error::Result<Option<Project>> {
        let Some(p) = crate::db::project::find_by_path(conn, &wanted)? else {
            return Ok(None);
        };
        let a = access::access(conn, user.as_ref(), &p, crate::service::now().date_naive())?;
        Ok(a.see.then_some(p))
    })
    .await;
    let project = match found {
        Ok(Some(p)) => p,
        Ok(None) => return crate::http::not_found().await,
        Err(resp) => return resp,
    };
    let url = format!("{}/{}.git", base_url(&app, &req), project.path);
    let csrf = current.as_ref().map(|c| c.csrf(&app));
    let body = html! {
        h1 { (project.name) }
        p.muted { (project.path) " · " (project.visibility) " · default branch " code { (project.default_branch) } }
        @if let Some(d) = &project.description { p { (d) } }
        h2 { "Clone with HTTP" }
        div.new-token {
            label.visually-hidden for="clone-url" { "Clone URL" }
            input #clone-url type="text" readonly value=(url);
            button type="button" data-copy="clone-url" { "Copy URL" }
        }
        pre { code { "git clone " (url) } }
        p.alert.warn {
            "Use a personal access token as the password (any username will do): with two-factor authentication on, "
            "your account password does not work for Git. "
            a href=(TOKENS) { "Create a personal access token" } "."
        }
    };
    html(
        StatusCode::OK,
        layout::page(&project.path, current.as_ref().zip(csrf.as_deref()), body),
    )
}
