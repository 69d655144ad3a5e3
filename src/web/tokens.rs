//! **User Settings > Access tokens** (`/-/user_settings/personal_access_tokens`),
//! as GitLab's pages describe it: a form (name, description, expiry date,
//! scopes, and gitpat's optional repository and push ref patterns), the
//! new token shown once at the top after a redirect (kept in
//! the session's encrypted flash, never in a URL), the active tokens with
//! **Rotate** and **Revoke**, and the inactive ones below.

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use maud::{html, Markup};

use super::layout::{self, field, Field};
use super::{html, see_other, signed_in, signed_in_post, with_conn, Current, TOKENS};
use crate::app::App;
use crate::auth::token::{self, Scope};
use crate::db::token::TokenRow;
use crate::error::Error;
use crate::service::{sessions as svc, tokens};
use crate::settings::Settings;

/// The form's default lifetime, as GitLab's page proposes.
pub const DEFAULT_DAYS: i64 = 30;
/// Tokens expiring within this many days are highlighted.
pub const SOON_DAYS: i64 = 7;

/// What each scope allows (GitLab's descriptions).
fn describe(s: Scope) -> &'static str {
    match s {
        Scope::Api => "Grants complete read/write access to the API, including all groups and projects.",
        Scope::ReadApi => "Grants read access to the API, including all groups and projects.",
        Scope::ReadUser => "Grants read-only access to your profile through the /user API endpoint, and to the /users endpoints.",
        Scope::ReadRepository => "Grants read-only access to repositories on private projects using Git-over-HTTP.",
        Scope::WriteRepository => "Grants read-write access to repositories on private projects using Git-over-HTTP.",
        Scope::ReadRegistry => "Grants read-only access to container registry images (accepted; gitpat has no registry).",
        Scope::WriteRegistry => "Grants write access to container registry images (accepted; gitpat has no registry).",
        Scope::Sudo => "Grants permission to perform API actions as any user in the system, when authenticated as an administrator.",
    }
}

/// What the form was given, and what was wrong with it, field by field.
#[derive(Default)]
struct Draft {
    name: String,
    description: String,
    expires_at: String,
    scopes: Vec<String>,
    /// Comma-separated patterns, empty for no restriction.
    repositories: String,
    push_ref_patterns: String,
    errors: Vec<(&'static str, String)>,
}

impl Draft {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

/// Which field a service refusal is about (its sentence names it).
fn field_of(message: &str) -> &'static str {
    if message.starts_with("name") {
        "name"
    } else if message.starts_with("description") {
        "description"
    } else if message.starts_with("expires_at") {
        "expires_at"
    } else if message.starts_with("repositories") {
        "repositories"
    } else if message.starts_with("push_ref_patterns") {
        "push_ref_patterns"
    } else if message.contains("scope") {
        "scopes"
    } else {
        "form"
    }
}

/// Days left and whether that is soon, for the expiry column.
fn expiry(row: &TokenRow, today: NaiveDate) -> Markup {
    match row.expires_at {
        None => html! { span.muted { "Never" } },
        Some(d) => {
            let left = (d - today).num_days();
            let text = match left {
                ..=0 => "expired".to_string(),
                1 => "in 1 day".to_string(),
                n => format!("in {n} days"),
            };
            html! {
                time datetime=(d.format("%Y-%m-%d").to_string()) { (d.format("%Y-%m-%d").to_string()) }
                " "
                span class=[(left <= SOON_DAYS).then_some("soon")] { "(" (text) ")" }
            }
        }
    }
}

/// "3 minutes ago", as GitLab's page words it.
pub fn ago(t: NaiveDateTime, now: NaiveDateTime) -> String {
    let d = now - t;
    let (n, unit) = if d < Duration::minutes(1) {
        return "just now".into();
    } else if d < Duration::hours(1) {
        (d.num_minutes(), "minute")
    } else if d < Duration::days(1) {
        (d.num_hours(), "hour")
    } else if d < Duration::days(60) {
        (d.num_days(), "day")
    } else {
        (d.num_days() / 30, "month")
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn scopes_of(row: &TokenRow) -> String {
    token::scopes_from_db(&row.scopes)
        .into_iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A restricted token's patterns, under its scopes.
fn limits_of(row: &TokenRow) -> Markup {
    let r = tokens::restriction(row);
    html! {
        @if let Some(l) = r.repository_list() { br; small.muted { "Repositories: " (l.join(", ")) } }
        @if let Some(l) = r.push_ref_list() { br; small.muted { "Push refs: " (l.join(", ")) } }
    }
}

/// A comma-separated field: `None` when left empty.
fn patterns(field: &str) -> Option<Vec<String>> {
    (!field.trim().is_empty()).then(|| crate::auth::restriction::split_list(field))
}

struct View<'a> {
    current: &'a Current,
    csrf: String,
    settings: Settings,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    draft: Draft,
}

fn render(v: &View) -> Markup {
    let now = Utc::now();
    let today = now.date_naive();
    let now = now.naive_utc();
    let (active, inactive): (Vec<&TokenRow>, Vec<&TokenRow>) = v
        .tokens
        .iter()
        .partition(|t| tokens::is_active(t, today, v.settings.enforce_personal_access_token_expiration));
    let latest = v
        .settings
        .max_personal_access_token_lifetime
        .map(|d| today + Duration::days(i64::from(d)));
    let expiry_hint = match (latest, v.settings.max_personal_access_token_lifetime) {
        (Some(l), Some(d)) => format!(
            "At most {d} days from today, until {l} (this instance's maximum lifetime). The token expires at 00:00 UTC on that date."
        ),
        _ => "Leave empty for a token that never expires. It expires at 00:00 UTC on that date.".into(),
    };
    let min = today.format("%Y-%m-%d").to_string();
    let max = latest.map(|l| l.format("%Y-%m-%d").to_string());
    let d = &v.draft;
    let scope_error = d.error("scopes");
    html! {
        h1 { "Personal access tokens" }
        p {
            "You can generate a personal access token for each application you use that needs access to the gitpat API, "
            "and use it in place of your password for Git over HTTP. With two-factor authentication on, you must."
        }
        @if let Some(t) = &v.new_token {
            section.alert.ok aria-labelledby="new-token-title" {
                h2 #new-token-title { "Your new personal access token" }
                div.new-token {
                    label.visually-hidden for="new-token" { "Token" }
                    input #new-token type="text" readonly value=(t) autocomplete="off";
                    button type="button" data-copy="new-token" { "Copy token" }
                }
                p { strong { "Make sure you save it - you won't be able to access it again." } }
            }
        }
        h2 { "Add a personal access token" }
        @if let Some(e) = d.error("form") { (layout::alert("error", e)) }
        form.stack method="post" action=(TOKENS) novalidate {
            (layout::csrf_field(&v.csrf))
            (field(&Field { name: "name", label: "Token name", value: &d.name, error: d.error("name"),
                required: true, maxlength: Some(255), hint: Some("For example, the application using the token or the purpose of the token."),
                ..Field::default() }))
            (field(&Field { name: "description", label: "Token description (optional)", value: &d.description,
                error: d.error("description"), maxlength: Some(255), ..Field::default() }))
            (field(&Field { name: "expires_at", label: "Expiration date", kind: "date", value: &d.expires_at,
                error: d.error("expires_at"), hint: Some(&expiry_hint), min: Some(&min), max: max.as_deref(),
                required: latest.is_some(), ..Field::default() }))
            fieldset aria-describedby=[scope_error.map(|_| "field-scopes-error")] {
                legend { "Select scopes" }
                @for s in Scope::ALL {
                    @if s != Scope::Sudo || v.current.user.is_admin {
                        div.scope {
                            input type="checkbox" name="scopes" value=(s.as_str()) id={ "scope-" (s.as_str()) }
                                checked[d.scopes.iter().any(|x| x == s.as_str())];
                            label for={ "scope-" (s.as_str()) } { code { (s.as_str()) } }
                            small { (describe(s)) }
                        }
                    }
                }
                @if let Some(e) = scope_error { p.error #field-scopes-error { (e) } }
            }
            (field(&Field { name: "repositories", label: "Repositories (optional)", value: &d.repositories,
                error: d.error("repositories"),
                hint: Some("Limit the token to these repositories, comma-separated: paths or namespace patterns such as alice/tools, team/* (one level), team/** (any depth). Empty: every repository you can reach."),
                ..Field::default() }))
            (field(&Field { name: "push_ref_patterns", label: "Push ref patterns (optional)", value: &d.push_ref_patterns,
                error: d.error("push_ref_patterns"),
                hint: Some("Limit the refs the token may push to, comma-separated git ref patterns such as refs/heads/feature/*, refs/tags/v*. Empty: any ref."),
                ..Field::default() }))
            div { button.primary type="submit" { "Create personal access token" } }
        }
        h2 { "Active personal access tokens (" (active.len()) ")" }
        @if active.is_empty() {
            p.muted { "This user has no active personal access tokens." }
        } @else {
            table {
                thead { tr { th { "Token name" } th { "Scopes" } th { "Created" } th { "Last used" } th { "Expires" } th { "Action" } } }
                tbody {
                    @for t in &active {
                        tr {
                            td data-label="Token name" { (t.name) @if let Some(desc) = &t.description { br; small.muted { (desc) } } }
                            td data-label="Scopes" { (scopes_of(t)) (limits_of(t)) }
                            td data-label="Created" { (t.created_at.format("%Y-%m-%d").to_string()) }
                            td data-label="Last used" {
                                @match t.last_used_at {
                                    Some(at) => {
                                        time datetime=(tokens::iso(at)) title=(tokens::iso(at)) { (ago(at, now)) }
                                        @let ips = crate::service::tokens::TokenView::new(t, &v.settings, today).last_used_ips;
                                        @if !ips.is_empty() { br; small.muted { "IPs: " (ips.join(", ")) } }
                                    }
                                    None => span.muted { "Never" },
                                }
                            }
                            td data-label="Expires" { (expiry(t, today)) }
                            td.actions {
                                form method="post" action={ (TOKENS) "/" (t.id) "/rotate" }
                                    data-confirm={ "Rotate " (t.name) "? It stops working at once and a new token replaces it." } {
                                    (layout::csrf_field(&v.csrf))
                                    button type="submit" aria-label={ "Rotate " (t.name) } { "Rotate" }
                                }
                                " "
                                form method="post" action={ (TOKENS) "/" (t.id) "/revoke" }
                                    data-confirm={ "Revoke " (t.name) "? Anything using it stops working at once." } {
                                    (layout::csrf_field(&v.csrf))
                                    button.danger type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Inactive personal access tokens (" (inactive.len()) ")" }
        @if inactive.is_empty() {
            p.muted { "This user has no inactive personal access tokens." }
        } @else {
            table {
                thead { tr { th { "Token name" } th { "Scopes" } th { "Created" } th { "Last used" } th { "State" } } }
                tbody {
                    @for t in &inactive {
                        tr {
                            td data-label="Token name" { (t.name) }
                            td data-label="Scopes" { (scopes_of(t)) }
                            td data-label="Created" { (t.created_at.format("%Y-%m-%d").to_string()) }
                            td data-label="Last used" { @match t.last_used_at { Some(at) => (ago(at, now)), None => "Never" } }
                            td data-label="State" { @if t.revoked { "Revoked" } @else { "Expired " (expiry(t, today)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Loads what the page lists, then renders it.
async fn respond(
    app: &web::Data<App>,
    current: Current,
    status: StatusCode,
    draft: Draft,
    take_flash: bool,
) -> HttpResponse {
    let settings = app.settings();
    let (user_id, row, secret) = (current.user.id, current.row.clone(), current.secret.clone());
    let loaded = with_conn(app, move |conn, app| {
        let flash = if take_flash {
            svc::take_flash(conn, &app.key, &row, &secret, svc::FlashKind::Token)?
        } else {
            None
        };
        Ok((tokens::personal_of(conn, user_id)?, flash))
    })
    .await;
    let (mut list, new_token) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let csrf = current.csrf(app);
    let view = View {
        current: &current,
        csrf: csrf.clone(),
        settings,
        tokens: list,
        new_token,
        draft,
    };
    let body = render(&view);
    html(
        status,
        layout::page("Personal access tokens", Some((&current, &csrf)), body),
    )
}

pub async fn page(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    let current = match signed_in(&app, &req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let draft = Draft {
        expires_at: (Utc::now().date_naive() + Duration::days(DEFAULT_DAYS))
            .format("%Y-%m-%d")
            .to_string(),
        ..Draft::default()
    };
    // The proposed date, cut to the instance's maximum.
    let mut draft = draft;
    if let Some(max) = app.settings().max_personal_access_token_lifetime {
        let latest = Utc::now().date_naive() + Duration::days(i64::from(max));
        if let Ok(d) = NaiveDate::parse_from_str(&draft.expires_at, "%Y-%m-%d") {
            if d > latest {
                draft.expires_at = latest.format("%Y-%m-%d").to_string();
            }
        }
    }
    respond(&app, current, StatusCode::OK, draft, true).await
}

pub async fn create(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let mut draft = Draft {
        name: form.get("name").to_string(),
        description: form.get("description").to_string(),
        expires_at: form.get("expires_at").trim().to_string(),
        scopes: form.all("scopes"),
        repositories: form.get("repositories").to_string(),
        push_ref_patterns: form.get("push_ref_patterns").to_string(),
        errors: Vec::new(),
    };
    let expires_at = if draft.expires_at.is_empty() {
        None
    } else {
        match NaiveDate::parse_from_str(&draft.expires_at, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                draft.errors.push((
                    "expires_at",
                    format!(
                        "Expiration date must be a date as YYYY-MM-DD, not {:?}",
                        draft.expires_at
                    ),
                ));
                None
            }
        }
    };
    if draft.scopes.is_empty() {
        draft.errors.push(("scopes", "Select at least one scope.".into()));
    }
    if draft.name.trim().is_empty() {
        draft.errors.push(("name", "Token name is required.".into()));
    }
    if !draft.errors.is_empty() {
        return respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, draft, false).await;
    }
    let settings = app.settings();
    let (user, row, secret) = (current.user.clone(), current.row.clone(), current.secret.clone());
    let (name, description, scopes) = (draft.name.clone(), draft.description.clone(), draft.scopes.clone());
    let (repositories, push_ref_patterns) = (patterns(&draft.repositories), patterns(&draft.push_ref_patterns));
    let actor = super::actor_of(&app, &req, &current.user);
    let made = with_conn(&app, move |conn, app| {
        let req = tokens::NewTokenRequest {
            user: &user,
            name: &name,
            description: (!description.trim().is_empty()).then_some(description.as_str()),
            scopes: &scopes,
            expires_at,
            token: None,
            impersonation: false,
            actor: &actor,
        };
        let limits = tokens::Limits {
            repositories: repositories.as_deref(),
            push_ref_patterns: push_ref_patterns.as_deref(),
        };
        match tokens::create_limited(conn, &app.key, &settings, &req, limits, crate::service::now()) {
            Ok((_, plain)) => {
                svc::set_flash(conn, &app.key, &row, &secret, svc::FlashKind::Token, plain.expose())?;
                Ok(Ok(()))
            }
            Err(Error::Invalid(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    })
    .await;
    match made {
        Ok(Ok(())) => see_other(TOKENS),
        Ok(Err(message)) => {
            draft.errors.push((field_of(&message), message));
            respond(&app, current, StatusCode::UNPROCESSABLE_ENTITY, draft, false).await
        }
        Err(resp) => resp,
    }
}

/// The id in the path: a number, else 404.
fn token_id(req: &HttpRequest) -> Option<i64> {
    req.match_info().get("id").and_then(|s| s.parse().ok())
}

pub async fn revoke(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, _) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(id) = token_id(&req) else {
        return super::refusal(StatusCode::NOT_FOUND, "No such token.");
    };
    let user_id = current.user.id;
    let actor = super::actor_of(&app, &req, &current.user);
    match with_conn(&app, move |conn, _| {
        tokens::get_owned(conn, user_id, id)?;
        tokens::revoke(conn, &actor, id, crate::service::now())
    })
    .await
    {
        Ok(_) => see_other(TOKENS),
        Err(resp) => resp,
    }
}

pub async fn rotate(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, _) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(id) = token_id(&req) else {
        return super::refusal(StatusCode::NOT_FOUND, "No such token.");
    };
    let settings = app.settings();
    let (user_id, row, secret) = (current.user.id, current.row.clone(), current.secret.clone());
    let actor = super::actor_of(&app, &req, &current.user);
    match with_conn(&app, move |conn, app| {
        tokens::get_owned(conn, user_id, id)?;
        let (_, plain) = tokens::rotate(conn, &app.key, &settings, &actor, id, None, crate::service::now())?;
        svc::set_flash(conn, &app.key, &row, &secret, svc::FlashKind::Token, plain.expose())
    })
    .await
    {
        Ok(()) => see_other(TOKENS),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_gitlab_writes_them() {
        let now = NaiveDate::from_ymd_opt(2026, 12, 2)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let cases = [
            (Duration::seconds(20), "just now"),
            (Duration::minutes(1), "1 minute ago"),
            (Duration::minutes(59), "59 minutes ago"),
            (Duration::hours(2), "2 hours ago"),
            (Duration::days(1), "1 day ago"),
            (Duration::days(45), "45 days ago"),
            (Duration::days(90), "3 months ago"),
        ];
        for (back, want) in cases {
            assert_eq!(ago(now - back, now), want, "{back:?}");
        }
    }

    #[test]
    fn refusals_go_next_to_their_field() {
        let cases = [
            ("name is required", "name"),
            ("description is too long (at most 255 characters)", "description"),
            ("expires_at 2030-01-01 is too far away: ...", "expires_at"),
            ("the sudo scope is only for tokens of administrators", "scopes"),
            ("unknown scope nope; the scopes are ...", "scopes"),
            ("repositories: \"x\" has no namespace", "repositories"),
            (
                "push_ref_patterns: \"main\" does not start with refs/",
                "push_ref_patterns",
            ),
            ("something else", "form"),
        ];
        for (m, f) in cases {
            assert_eq!(field_of(m), f, "{m}");
        }
    }
}
