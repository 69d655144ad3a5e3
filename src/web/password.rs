//! **Password** (`/-/user_settings/password/edit`): change it with the
//! current one (2FA users too). A new password ends every session, this
//! one included: the browser signs in again with it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::layout::{self, field, Field};
use super::{html, see_other, signed_in, signed_in_post, Current, PASSWORD};
use crate::app::App;
use crate::error::Error;
use crate::service::users;

#[derive(Default)]
struct Errors {
    current: Option<String>,
    new: Option<String>,
    confirmation: Option<String>,
}

fn render(current: &Current, csrf: &str, e: &Errors) -> Markup {
    let body = html! {
        h1 { "Password" }
        p { "After a successful password update, you are signed out everywhere and sign in again with your new password." }
        form.stack method="post" action=(PASSWORD) {
            (layout::csrf_field(csrf))
            (field(&Field { name: "current_password", label: "Current password", kind: "password",
                error: e.current.as_deref(), required: true, autocomplete: "current-password", ..Field::default() }))
            (field(&Field { name: "new_password", label: "New password", kind: "password",
                error: e.new.as_deref(), required: true, autocomplete: "new-password", ..Field::default() }))
            (field(&Field { name: "password_confirmation", label: "Password confirmation", kind: "password",
                error: e.confirmation.as_deref(), required: true, autocomplete: "new-password", ..Field::default() }))
            div { button.primary type="submit" { "Save password" } }
        }
    };
    layout::page("Password", Some((current, csrf)), body)
}

pub async fn page(app: web::Data<App>, req: HttpRequest) -> HttpResponse {
    match signed_in(&app, &req).await {
        Ok(c) => {
            let csrf = c.csrf(&app);
            html(StatusCode::OK, render(&c, &csrf, &Errors::default()))
        }
        Err(resp) => resp,
    }
}

pub async fn update(app: web::Data<App>, req: HttpRequest, mut payload: web::Payload) -> HttpResponse {
    let (current, form) = match signed_in_post(&app, &req, &mut payload).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let csrf = current.csrf(&app);
    let refuse = |e: Errors| html(StatusCode::UNPROCESSABLE_ENTITY, render(&current, &csrf, &e));
    let (old, new, again) = (
        form.get("current_password").to_string(),
        form.get("new_password").to_string(),
        form.get("password_confirmation").to_string(),
    );
    if new != again {
        return refuse(Errors {
            confirmation: Some("Password confirmation doesn't match the new password.".into()),
            ..Errors::default()
        });
    }
    match super::reauthenticate(&app, &req, &current, old).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            return refuse(Errors {
                current: Some(why),
                ..Errors::default()
            })
        }
        Err(resp) => return resp,
    }
    // The new hash is made with no connection held; then one write.
    let (id, a) = (current.user.id, app.clone().into_inner());
    let actor = super::actor_of(&app, &req, &current.user);
    let outcome = crate::metrics::block(move || -> crate::error::Result<Result<(), Errors>> {
        let hash = match users::hashed_password(&new) {
            Ok(h) => h,
            Err(Error::Invalid(m)) => {
                return Ok(Err(Errors {
                    new: Some(m),
                    ..Errors::default()
                }))
            }
            Err(e) => return Err(e),
        };
        let update = users::UserUpdate::default();
        users::update_hashed(&mut *a.conn()?, &actor, id, &update, Some(hash), crate::service::now())?;
        Ok(Ok(()))
    })
    .await;
    match outcome {
        Ok(Ok(Ok(()))) => {
            let mut resp = see_other(&format!("{}?password_changed=1", super::SIGN_IN));
            let _ = resp.add_cookie(&super::expired_cookie(&app, super::SESSION_COOKIE));
            resp
        }
        Ok(Ok(Err(e))) => refuse(e),
        Ok(Err(e)) => super::service_error(e),
        Err(e) => super::internal(e),
    }
}
