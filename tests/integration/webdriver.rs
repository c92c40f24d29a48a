//! A small W3C WebDriver client, enough to drive the real app through tauri-driver.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Clicks the element only if a user could: it is enabled, has a size, and it (or something
/// inside it) is the topmost element at its centre once scrolled into view.
const CLICK_IF_ON_TOP: &str = r#"
const el = arguments[0];
el.scrollIntoView({block: "center", inline: "center"});
if (el.disabled) return "disabled";
const r = el.getBoundingClientRect();
if (r.width === 0 || r.height === 0) return "not visible";
const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
if (!top || !(top === el || el.contains(top))) return "covered by " + (top ? top.outerHTML.slice(0, 120) : "nothing");
el.click();
return "clicked";
"#;

/// tauri-driver on its own ports; stopped with SIGTERM so it stops WebKitWebDriver too.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start(envs: &[(&str, String)]) -> Driver {
        let port = pgsteward::cluster::free_port().unwrap();
        let native = pgsteward::cluster::free_port().unwrap();
        let mut cmd = Command::new(tauri_driver_path());
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(driver_log());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .expect("tauri-driver (install with scripts/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tauri-driver did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// tauri-driver's messages go to a log file among the test artifacts (inheriting the test's
/// stderr would let WebKitWebDriver hold it open after the test ends).
fn driver_log() -> Stdio {
    let dir = std::env::var("PGSTEWARD_ARTIFACTS")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let _ = std::fs::create_dir_all(&dir);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{dir}/tauri-driver.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn tauri_driver_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("TAURI_DRIVER") {
        return p.into();
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cargo"));
    let p = home.join("bin/tauri-driver");
    if p.exists() {
        p
    } else {
        "tauri-driver".into()
    }
}

fn dirs_home() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(Into::into)
        .unwrap_or_else(|| "/root".into())
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// One session, i.e. one running instance of the app.
pub struct Session {
    base: String,
    agent: ureq::Agent,
}

#[derive(Clone)]
pub struct Element {
    id: String,
}

impl Session {
    pub fn launch(driver: &Driver, application: &str) -> Session {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": application, "args": []}}}});
        // tauri-driver listens before the native WebKitWebDriver behind it does; until then a
        // new session fails at the transport level, so those failures are retried for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        let v: Value = loop {
            match agent
                .post(&format!("{}/session", driver.url))
                .send_json(caps.clone())
            {
                Ok(r) => break r.into_json().unwrap(),
                Err(ureq::Error::Transport(t)) if Instant::now() < deadline => {
                    eprintln!("WebDriver not ready yet ({t}); retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("creating a WebDriver session: {}", describe(e)),
            }
        };
        let id = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Session {
            base: format!("{}/session/{id}", driver.url),
            agent,
        }
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        match self
            .agent
            .post(&format!("{}{path}", self.base))
            .send_json(body)
        {
            Ok(r) => Ok(r.into_json::<Value>().unwrap()["value"].clone()),
            Err(e) => Err(describe(e)),
        }
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Ok(r) => Ok(r.into_json::<Value>().unwrap()["value"].clone()),
            Err(e) => Err(describe(e)),
        }
    }

    pub fn find_all(&self, testid: &str) -> Vec<Element> {
        let css = format!("[data-testid=\"{testid}\"]");
        self.post("/elements", json!({"using": "css selector", "value": css}))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                e[ELEMENT_KEY]
                    .as_str()
                    .map(|id| Element { id: id.to_string() })
            })
            .collect()
    }

    /// Elements with this `data-testid` inside `parent`.
    pub fn find_all_within(&self, parent: &Element, testid: &str) -> Vec<Element> {
        let css = format!("[data-testid=\"{testid}\"]");
        self.post(
            &format!("/element/{}/elements", parent.id),
            json!({"using": "css selector", "value": css}),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            e[ELEMENT_KEY]
                .as_str()
                .map(|id| Element { id: id.to_string() })
        })
        .collect()
    }

    /// Run a script in the page and return its value.
    pub fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({"script": js, "args": []}))
            .expect("script")
    }

    /// Wait for an element with this `data-testid` (the UI is asynchronous).
    pub fn wait(&self, testid: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find_all(testid).into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let banner = self.failure_context();
                panic!(
                    "no element [data-testid={testid}] after {timeout:?}; error banner: {banner:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// On a timeout: keep a screenshot and return what the error banner says.
    fn failure_context(&self) -> String {
        self.keep_screenshot("failure");
        self.find_all("error-banner")
            .first()
            .map(|b| self.text(b))
            .unwrap_or_default()
    }

    /// Wait until `f` gives Some.
    pub fn until<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                let banner = self.failure_context();
                panic!("timed out waiting for {what}; error banner: {banner:?}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Click like a user, waiting (as a person would) until the element can be clicked:
    /// WebKitWebDriver's own click, or, where it calls a button in a modal dialog "not
    /// interactable", a click dispatched after checking that the element is what a user would
    /// hit at its centre (visible, enabled, on top). A freshly opened dialog takes a moment
    /// before it receives clicks under a virtual display.
    pub fn click(&self, e: &Element) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let err = match self.post(&format!("/element/{}/click", e.id), json!({})) {
                Ok(_) => return,
                Err(err) => err,
            };
            let hit = if err.contains("element not interactable") {
                self.post(
                    "/execute/sync",
                    json!({"script": CLICK_IF_ON_TOP, "args": [{ELEMENT_KEY: e.id}]}),
                )
            } else {
                Err(String::new())
            };
            if hit.as_ref().ok().and_then(Value::as_str) == Some("clicked") {
                return;
            }
            if hit.is_err() || Instant::now() > deadline {
                let banner = self.failure_context();
                panic!("click: {err}; at its centre: {hit:?}; error banner: {banner:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn clear(&self, e: &Element) {
        self.post(&format!("/element/{}/clear", e.id), json!({}))
            .expect("clear");
    }

    pub fn type_text(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.id), json!({"text": text}))
            .expect("send keys");
    }

    /// The element's text. WebKitWebDriver's own text endpoint returns "" for some visible
    /// elements, so this reads `textContent` through a script.
    pub fn text(&self, e: &Element) -> String {
        self.post(
            "/execute/sync",
            json!({"script": "return arguments[0].textContent.trim();", "args": [{ELEMENT_KEY: e.id}]}),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.id))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Save a screenshot as `<name>.png` in PGSTEWARD_ARTIFACTS, when that is set.
    pub fn keep_screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("PGSTEWARD_ARTIFACTS") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(format!("{dir}/{name}.png"), self.screenshot_png());
        }
    }

    pub fn screenshot_png(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.get("/screenshot").expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            format!("HTTP {code}: {}", r.into_string().unwrap_or_default())
        }
        other => other.to_string(),
    }
}
