//! The listeners: the main one (plain HTTP, or https with HTTP/2 by ALPN),
//! the optional plain-HTTP one that only redirects to https, and the
//! optional one of `/-/metrics`; graceful stops.
//!
//! actix-web's `HttpServer` is not used: an https port must answer a
//! plain-HTTP request with a sentence (`RefusePlainHttp`), which needs the
//! connection before TLS starts, so the services are put together here
//! from the same parts (`actix-server`, `actix-http`'s `HttpService`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::{Server, ServerBuilder};
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::{web, App as ActixApp, HttpRequest, HttpResponse};
use anyhow::Context;
use futures::future::LocalBoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::App;

/// What to listen on.
#[derive(Debug, Default)]
pub struct Listen<'a> {
    /// The main listener (`host:port`; port 0 for a free one).
    pub main: &'a str,
    /// https on the main listener with this certificate.
    pub tls: Option<Arc<crate::tls::CertStore>>,
    /// Plain HTTP that redirects every request to the main listener's https.
    pub redirect: Option<&'a str>,
    /// `/-/metrics` (and the health checks) for anyone who reaches it.
    pub metrics: Option<&'a str>,
}

/// A started server: await `server` to run it.
pub struct Listening {
    pub server: Server,
    pub main: Vec<SocketAddr>,
    pub redirect: Vec<SocketAddr>,
    pub metrics: Vec<SocketAddr>,
}

/// How long a client may take to send its request head (as actix-web's).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that has sent nothing by then is closed before TLS.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds every listener and builds the server; nothing is served until
/// the returned server is awaited.
pub fn start(app: App, listen: Listen<'_>) -> anyhow::Result<Listening> {
    let data = web::Data::new(app);
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(data.config.shutdown_timeout.as_secs().max(1));
    let shutdown = builder.graceful_shutdown_signal();

    let tls = match &listen.tls {
        Some(store) => Some(store.server_config().context("cannot set up https")?),
        None => None,
    };
    let hsts = match (&tls, data.config.hsts_max_age_seconds) {
        (Some(_), age) if age > 0 => Some(format!("max-age={age}")),
        _ => None,
    };
    let mut main = Vec::new();
    for lst in bind_all(listen.main)? {
        let addr = lst.local_addr().context("a listener without an address")?;
        main.push(addr);
        let data = data.clone();
        let hsts = hsts.clone();
        let make_app = move || {
            ActixApp::new()
                .app_data(data.clone())
                .wrap(Condition::new(
                    hsts.is_some(),
                    DefaultHeaders::new().add(("Strict-Transport-Security", hsts.clone().unwrap_or_default())),
                ))
                .wrap_fn(super::request_log::log_request)
                .configure(super::configure)
        };
        builder = listen_on(builder, lst, addr, make_app, tls.clone(), shutdown.clone())?;
    }
    let https_port = main.first().map(|a| a.port()).unwrap_or(443);

    let mut redirect = Vec::new();
    if let Some(at) = listen.redirect {
        for lst in bind_all(at)? {
            let addr = lst.local_addr().context("a listener without an address")?;
            redirect.push(addr);
            let target = web::Data::new(RedirectTarget {
                external: data.config.external_url.clone().filter(|u| u.starts_with("https://")),
                port: https_port,
            });
            let make_app = move || {
                ActixApp::new()
                    .app_data(target.clone())
                    .wrap_fn(super::request_log::log_request)
                    .default_service(web::to(to_https))
            };
            builder = listen_on(builder, lst, addr, make_app, None, shutdown.clone())?;
        }
    }

    let mut metrics = Vec::new();
    if let Some(at) = listen.metrics {
        for lst in bind_all(at)? {
            let addr = lst.local_addr().context("a listener without an address")?;
            metrics.push(addr);
            let data = data.clone();
            let make_app = move || {
                ActixApp::new()
                    .app_data(data.clone())
                    .app_data(web::Data::new(super::MetricsListener))
                    .configure(super::configure_monitoring)
                    .default_service(web::to(super::not_found))
            };
            builder = listen_on(builder, lst, addr, make_app, None, shutdown.clone())?;
        }
    }
    Ok(Listening {
        server: builder.run(),
        main,
        redirect,
        metrics,
    })
}

/// Every address `at` names, bound as actix-web binds (address reuse, a
/// backlog of 1024).
fn bind_all(at: &str) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let addrs: Vec<SocketAddr> = at
        .to_socket_addrs()
        .with_context(|| format!("cannot listen on {at}: not an address"))?
        .collect();
    if addrs.is_empty() {
        anyhow::bail!("cannot listen on {at}: it names no address");
    }
    addrs
        .into_iter()
        .map(|addr| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(std::net::TcpListener::from(socket))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot listen on {at}"))
}

/// Adds one listener serving the apps `make_app` builds (one per worker),
/// over TLS when `tls` is given.
fn listen_on<F, I, S, B>(
    builder: ServerBuilder,
    lst: std::net::TcpListener,
    addr: SocketAddr,
    make_app: F,
    tls: Option<rustls::ServerConfig>,
    shutdown: actix_server::GracefulShutdownSignal,
) -> anyhow::Result<ServerBuilder>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let secure = tls.is_some();
    let name = format!("gitpat-{addr}");
    // The service every connection of one worker goes through: HTTP/1.1
    // (and HTTP/2 when TLS's ALPN picks it) into the app.
    macro_rules! http_service {
        () => {{
            let shutdown = shutdown.clone();
            let app = make_app().into_factory().map_err(|e| e.into().error_response());
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = shutdown.clone();
                    async move { signal.notified().await }
                })
                .keep_alive(KeepAlive::default())
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .finish(map_config(app, move |_| {
                    // actix-web's own listeners make this value; the
                    // constructor is public under this name only.
                    AppConfig::__priv_test_new(secure, addr.to_string(), addr)
                }))
        }};
    }
    let builder = match tls {
        None => builder.listen(name, lst, move || http_service!().tcp()),
        Some(config) => builder.listen(name, lst, move || {
            RefusePlainHttp(http_service!().rustls_0_23(config.clone()))
        }),
    };
    builder.with_context(|| format!("cannot listen on {addr}"))
}

/// Where the redirecting listener sends clients.
struct RedirectTarget {
    /// `external_url` when it is https.
    external: Option<String>,
    /// The https port (for clients that named a host without one).
    port: u16,
}

/// Any request on the plain-HTTP listener: the same path on https.
async fn to_https(req: HttpRequest, target: web::Data<RedirectTarget>) -> HttpResponse {
    let path = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let base = match &target.external {
        Some(u) => origin(u).to_string(),
        None => {
            let host = req
                .headers()
                .get(actix_web::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(host_of)
                .unwrap_or_else(|| req.app_config().local_addr().ip().to_string());
            let host = if host.contains(':') { format!("[{host}]") } else { host };
            match target.port {
                443 => format!("https://{host}"),
                port => format!("https://{host}:{port}"),
            }
        }
    };
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, format!("{base}{path}")))
        .content_type("text/plain; charset=utf-8")
        .body(format!("gitpat is served over https: {base}{path}\n"))
}

/// `scheme://host[:port]` of a URL (no path).
fn origin(url: &str) -> &str {
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// The host of a `Host` header without its port, if it is a plain name or
/// address (anything else is not put into a `Location`).
fn host_of(header: &str) -> Option<String> {
    let host = match header.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => header.rsplit_once(':').map_or(header, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                header
            }
        }),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':');
    ok.then(|| host.to_string())
}

/// In front of TLS: a connection whose first byte starts an HTTP request
/// instead of a TLS handshake gets a 400 that says to use https, instead
/// of a dropped connection that clients report as an empty reply.
struct RefusePlainHttp<F>(F);

impl<F> ServiceFactory<tokio::net::TcpStream> for RefusePlainHttp<F>
where
    F: ServiceFactory<tokio::net::TcpStream, Config = (), Response = ()>,
    F::Service: 'static,
    F::Future: 'static,
{
    type Response = ();
    type Error = F::Error;
    type Config = ();
    type Service = RefusePlainHttpService<F::Service>;
    type InitError = F::InitError;
    type Future = LocalBoxFuture<'static, Result<Self::Service, Self::InitError>>;

    fn new_service(&self, cfg: ()) -> Self::Future {
        let inner = self.0.new_service(cfg);
        Box::pin(async move {
            Ok(RefusePlainHttpService {
                inner: Rc::new(inner.await?),
            })
        })
    }
}

struct RefusePlainHttpService<S> {
    inner: Rc<S>,
}

impl<S> Service<tokio::net::TcpStream> for RefusePlainHttpService<S>
where
    S: Service<tokio::net::TcpStream, Response = ()> + 'static,
{
    type Response = ();
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<(), S::Error>>;

    actix_service::forward_ready!(inner);

    fn call(&self, stream: tokio::net::TcpStream) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
                Ok(Ok(1..)) => {}
                // Silent, closed or failed before a byte: nothing to answer.
                _ => return Ok(()),
            }
            // A TLS record starts with its type (22, a handshake); an HTTP
            // request with its method's first capital letter.
            if first[0].is_ascii_uppercase() {
                refuse_plain_http(stream).await;
                return Ok(());
            }
            inner.call(stream).await
        })
    }
}

async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    const BODY: &str =
        "400 Bad Request: this port speaks https only; use an https:// URL (http:// sends tokens in clear)\n";
    // Read what came (the request head) before answering: closing with
    // unread data would reset the connection before the client reads.
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
        // Let the client read the answer and close first.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while matches!(stream.read(&mut buf).await, Ok(1..)) {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_for_the_redirect() {
        let cases = [
            ("git.example:8080", Some("git.example")),
            ("git.example", Some("git.example")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:8080", Some("::1")),
            ("evil.example/path", None),
            ("a b", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(host_of(header).as_deref(), want, "{header}");
        }
        assert_eq!(origin("https://git.example/gitlab"), "https://git.example");
        assert_eq!(origin("https://git.example:8443"), "https://git.example:8443");
    }
}
