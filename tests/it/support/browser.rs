//! A real Chromium, headless, driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `./test` installs): one
//! chromedriver and one fresh browser profile per [`Browser`].

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a wait for an element or a page gives up after.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    pub fn open() -> Browser {
        Browser::open_with(&[])
    }

    /// A browser that trusts the server certificate `cert` (PEM) alone,
    /// besides the system's: Chromium takes the SHA-256 of its public key
    /// (`--ignore-certificate-errors-spki-list`, honoured with a profile
    /// folder of its own), so any other certificate is still refused.
    pub fn open_trusting(cert: &std::path::Path) -> Browser {
        let out = Command::new("sh")
            .arg("-c")
            .arg(
                "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
            )
            .arg("sh")
            .arg(cert)
            .output()
            .expect("openssl");
        let spki = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success() && spki.len() == 44, "the key's hash: {spki:?}");
        Browser::open_with(&[format!("--ignore-certificate-errors-spki-list={spki}")])
    }

    fn open_with(extra: &[String]) -> Browser {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run the tests with ./test, which installs chromium and chromium-driver"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
            }
        }))
        .expect("capabilities");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let attempt = rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(c) => break c,
                Err(e) if started.elapsed() < WAIT => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("no WebDriver session from {CHROMEDRIVER}: {e}"),
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.c().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).expect("the current URL");
        u.path().to_string()
    }

    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).expect("the page source")
    }

    /// The element `css`, waited for.
    fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.rt
            .block_on(self.c().wait().at_most(WAIT).for_element(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("no element {css} on {}: {e}\n{}", self.path(), self.source()))
    }

    /// Waits until an element `css` is on the page (after a click, the
    /// answer's page: [`Browser::exists`] would look at the old one).
    pub fn wait_for(&self, css: &str) {
        self.find(css);
    }

    pub fn exists(&self, css: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Types `text` into the field `css`, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(async {
            e.clear().await.unwrap_or_else(|err| panic!("clear {css}: {err}"));
            e.send_keys(text)
                .await
                .unwrap_or_else(|err| panic!("type into {css}: {err}"));
        });
    }

    /// Sets a date field (typing into one depends on the browser's locale).
    pub fn set_date(&self, css: &str, yyyy_mm_dd: &str) {
        self.find(css);
        let script = "document.querySelector(arguments[0]).value = arguments[1];";
        self.rt
            .block_on(self.c().execute(script, vec![css.into(), yyyy_mm_dd.into()]))
            .unwrap_or_else(|e| panic!("set {css}: {e}"));
    }

    /// Clicks `css`. The page is marked first, so that
    /// [`Browser::wait_for_path`] waits for the answer's page even when it
    /// has the same path as this one (a form that posts back to its page).
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt
            .block_on(
                self.c()
                    .execute("document.documentElement.setAttribute('data-test-left', '');", vec![]),
            )
            .unwrap_or_else(|err| panic!("mark the page before clicking {css}: {err}"));
        self.rt
            .block_on(e.click())
            .unwrap_or_else(|err| panic!("click {css}: {err}"));
    }

    /// Clicks `css`, then accepts the confirmation the page asks for.
    pub fn click_and_confirm(&self, css: &str) -> String {
        self.click(css);
        let started = Instant::now();
        loop {
            match self.rt.block_on(self.c().get_alert_text()) {
                Ok(text) => {
                    self.rt
                        .block_on(self.c().accept_alert())
                        .expect("accept the confirmation");
                    return text;
                }
                Err(_) if started.elapsed() < WAIT => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("no confirmation after clicking {css}: {e}"),
            }
        }
    }

    /// The text of `css`.
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.rt.block_on(e.text()).expect("an element's text")
    }

    /// The current value of the field `css`.
    pub fn value(&self, css: &str) -> String {
        let e = self.find(css);
        self.rt
            .block_on(e.prop("value"))
            .expect("a field's value")
            .unwrap_or_default()
    }

    /// The window's size, in CSS pixels.
    pub fn set_size(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.c().set_window_size(width, height))
            .expect("resize the window");
    }

    /// What `script` (a function body) returns.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// The value of cookie `name`, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.rt
            .block_on(self.c().get_named_cookie(name))
            .ok()
            .map(|c| c.value().to_string())
    }

    /// Waits until the page's path is `path` and, after a click, until the
    /// page is the click's answer (not the page clicked on).
    pub fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        while self.path() != path || self.is_the_clicked_page() {
            assert!(
                started.elapsed() < WAIT,
                "still on {} instead of {path}:\n{}",
                self.path(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the page is still the one [`Browser::click`] marked (while
    /// it navigates the script may fail: then it is not yet the answer).
    fn is_the_clicked_page(&self) -> bool {
        let script = "return document.documentElement.hasAttribute('data-test-left');";
        !matches!(
            self.rt.block_on(self.c().execute(script, vec![])),
            Ok(serde_json::Value::Bool(false))
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
