//! The request log and the request metrics: one line per request, as text
//! or JSON, with the user, token and Sudo administrator the handler found
//! (never a secret), and the request counted by route group and status in
//! the duration histogram.
//!
//! Both are written when the response is over (its body sent to the end,
//! or dropped because the client went away), not when its head is ready:
//! a clone's pack streams for as long as it takes, and that is its
//! duration.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::HttpMessage;

use super::{Who, WhoSlot};
use crate::config::LogFormat;

/// What is known of a request when its response starts.
struct Line {
    start: Instant,
    peer: String,
    method: String,
    /// The path and query, credentials redacted.
    target: String,
    /// The path alone (its route group).
    path: String,
    status: u16,
    who: WhoSlot,
}

impl Line {
    fn write(self) {
        let who: Who = self.who.get();
        let elapsed = self.start.elapsed().as_secs_f64();
        crate::metrics::get().request(&self.path, self.status, elapsed);
        let ms = elapsed * 1e3;
        let Line {
            peer,
            method,
            target,
            status,
            ..
        } = self;
        match crate::logging::format() {
            LogFormat::Text => {
                tracing::info!(target: "gitpat::http", "{peer} \"{method} {target}\" {status} {ms:.1}ms{who}")
            }
            LogFormat::Json => tracing::info!(
                target: "gitpat::http",
                peer = %peer,
                method = %method,
                path = %target,
                status,
                duration_ms = (ms * 10.0).round() / 10.0,
                user_id = who.user_id,
                token_id = who.token_id,
                sudo_by = who.sudo_by,
                "request"
            ),
        }
    }
}

/// A response body that writes its request's [`Line`] at its end: the
/// last chunk polled, an error, or the body dropped unfinished.
pub struct Logged {
    body: BoxBody,
    line: Option<Line>,
}

impl Logged {
    fn finish(&mut self) {
        if let Some(line) = self.line.take() {
            line.write();
        }
    }
}

impl MessageBody for Logged {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let next = Pin::new(&mut self.body).poll_next(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finish();
        }
        next
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The middleware (`wrap_fn`): every response's body becomes [`Logged`].
pub fn log_request<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<Logged>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let start = Instant::now();
    // The path and query only: an absolute- or authority-form target's
    // scheme and authority (userinfo included) are never printed.
    let target = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("*");
    let target = crate::redact::url(target, false);
    let method = req.method().to_string();
    let path = req.path().to_string();
    let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let who = WhoSlot::default();
    req.extensions_mut().insert(who.clone());
    let mut line = Line {
        start,
        peer,
        method,
        target,
        path,
        status: 0,
        who,
    };
    let fut = srv.call(req);
    async move {
        match fut.await {
            Ok(res) => {
                line.status = res.status().as_u16();
                Ok(res.map_body(move |_, body| Logged {
                    body: body.boxed(),
                    line: Some(line),
                }))
            }
            // An error the app did not turn into a response (actix-web
            // answers it): its line now.
            Err(e) => {
                line.status = e.as_response_error().status_code().as_u16();
                line.write();
                Err(e)
            }
        }
    }
}
