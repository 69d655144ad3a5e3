//! The one layout of every page, the embedded stylesheet and script, and
//! the small pieces forms share (fields with their errors, the CSRF field).

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::{Current, CSRF_FIELD, PASSWORD_EDIT, PROJECTS, SESSIONS, SIGN_OUT, TOKENS, TWO_FACTOR_AUTH};

pub const CSS_PATH: &str = "/-/assets/gitpat.css";
pub const JS_PATH: &str = "/-/assets/gitpat.js";
const CSS: &str = include_str!("assets/gitpat.css");
const JS: &str = include_str!("assets/gitpat.js");

pub async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// A whole page: `title`, the navigation for `who` (none before sign-in),
/// and `body`.
pub fn page(title: &str, who: Option<(&Current, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · gitpat" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(JS_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "gitpat" }
                    @if let Some((current, csrf)) = who {
                        nav aria-label="User settings" {
                            a href=(PROJECTS) { "Projects" }
                            a href=(TOKENS) { "Access tokens" }
                            a href=(TWO_FACTOR_AUTH) { "Two-factor authentication" }
                            a href=(PASSWORD_EDIT) { "Password" }
                            a href=(SESSIONS) { "Active sessions" }
                            @if current.user.is_admin { a href="/admin" { "Admin area" } }
                            span.muted { (current.user.username) }
                            form method="post" action=(SIGN_OUT) {
                                (csrf_field(csrf))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A page that only says why (a refusal, an error).
pub fn message_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    page(
        title,
        None,
        html! {
            h1 { (status.as_u16()) " " (title) }
            p.alert.error role="alert" { (message) }
            p { a href="/" { "Back to gitpat" } }
        },
    )
}

/// An alert at the top of a form.
pub fn alert(kind: &str, message: &str) -> Markup {
    html! { p class={ "alert " (kind) } role="alert" { (message) } }
}

/// A labelled input with its hint and its error (`aria-invalid` and
/// `aria-describedby` tie them to the field).
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub hint: Option<&'a str>,
    pub error: Option<&'a str>,
    pub required: bool,
    pub autocomplete: &'a str,
    pub autofocus: bool,
    pub min: Option<&'a str>,
    pub max: Option<&'a str>,
    pub maxlength: Option<usize>,
    pub inputmode: Option<&'a str>,
}

impl Default for Field<'_> {
    fn default() -> Self {
        Field {
            name: "",
            label: "",
            kind: "text",
            value: "",
            hint: None,
            error: None,
            required: false,
            autocomplete: "off",
            autofocus: false,
            min: None,
            max: None,
            maxlength: None,
            inputmode: None,
        }
    }
}

pub fn field(f: &Field) -> Markup {
    let id = format!("field-{}", f.name);
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described: Vec<&str> = [f.hint.map(|_| hint_id.as_str()), f.error.map(|_| error_id.as_str())]
        .into_iter()
        .flatten()
        .collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    html! {
        div.field {
            label for=(id) { (f.label) }
            input type=(f.kind) id=(id) name=(f.name) value=(f.value) autocomplete=(f.autocomplete)
                required[f.required] autofocus[f.autofocus || f.error.is_some()]
                aria-invalid=[f.error.map(|_| "true")] aria-describedby=[described]
                min=[f.min] max=[f.max] maxlength=[f.maxlength] inputmode=[f.inputmode];
            @if let Some(h) = f.hint { p.hint id=(hint_id) { (h) } }
            @if let Some(e) = f.error { p.error id=(error_id) { (e) } }
        }
    }
}
