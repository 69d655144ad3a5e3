//! **Active sessions** (`/-/user_settings/active_sessions`): where the user
//! is signed in, with **Revoke** for each.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use maud::html;

use super::layout;
use super::tokens::ago;
use super::{html, see_other, signed_in, signed_in_post, with_conn, SESSIONS};
use crate::app::App;
use crate::service::sessions as svc;

pub async fn page(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let current = match signed_in(&app, &req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let user_id = current.user.id;
    let list = match with_conn(&app, move |conn, _| svc::list(conn, user_id, crate::service::now())).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let csrf = current.csrf(&app);
    let now = chrono::Utc::now().naive_utc();
    let body = html! {
        h1 { "Active sessions" }
        p { "The browsers signed in to your account. Revoke one you do not recognise; change your password to end them all." }
        table {
            thead { tr { th { "Browser" } th { "IP address" } th { "Signed in" } th { "Last used" } th { "Action" } } }
            tbody {
                @for s in &list {
                    tr {
                        td data-label="Browser" { (s.user_agent.as_deref().unwrap_or("Unknown browser")) }
                        td data-label="IP address" { (s.ip.as_deref().unwrap_or("unknown")) }
                        td data-label="Signed in" { (s.created_at.format("%Y-%m-%d %H:%M UTC").to_string()) }
                        td data-label="Last used" { (ago(s.last_seen_at, now)) }
                        td.actions {
                            @if s.id == current.row.id {
                                strong { "This is your current session" }
                            } @else {
                                form method="post" action={ (SESSIONS) "/" (s.id) "/revoke" }
                                    data-confirm="Revoke this session? That browser is signed out at once." {
                                    (layout::csrf_field(&csrf))
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        layout::page("Active sessions", Some((&current, &csrf)), body),
    )
}

pub async fn revoke(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, _) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(id) = req.match_info().get("id").and_then(|s| s.parse::<i64>().ok()) else {
        return super::refusal(StatusCode::NOT_FOUND, "No such session.");
    };
    let user_id = current.user.id;
    match with_conn(&app, move |conn, _| svc::revoke(conn, user_id, id)).await {
        Ok(()) => see_other(SESSIONS),
        Err(resp) => resp,
    }
}
