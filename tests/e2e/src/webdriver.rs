//! A small synchronous W3C WebDriver client (the subset the desktop tests use).

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An element reference in the current page.
#[derive(Debug, Clone)]
pub struct Element(pub String);

pub struct Session {
    agent: ureq::Agent,
    base: String,
    pub id: String,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        // WebDriver reports errors as 4xx/5xx with a JSON body that says what went wrong: read it, don't drop it.
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn unwrap_value(method: &str, path: &str, status: u16, body: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(body).with_context(|| {
        format!("{method} {path}: HTTP {status}, body is not JSON: {body:.300}")
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some_and(|e| e.is_string()) {
        bail!(
            "{method} {path}: HTTP {status}: {} — {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or(body)
        );
    }
    Ok(value)
}

impl Session {
    /// Opens a session; for tauri-driver this launches the app, so allow for a slow first start.
    pub fn new(driver_url: &str, capabilities: Value) -> Result<Session> {
        let agent = agent(Duration::from_secs(120));
        let base = driver_url.trim_end_matches('/').to_string();
        let body = json!({ "capabilities": { "alwaysMatch": capabilities } });
        let mut resp = agent
            .post(format!("{base}/session"))
            .send_json(&body)
            .with_context(|| format!("POST {base}/session"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        let value = unwrap_value("POST", "/session", status, &text)?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("new session reply has no sessionId: {text:.300}"))?
            .to_string();
        Ok(Session {
            agent: agent_for_commands(),
            base,
            id,
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.id, path);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, Some(b)) => self.agent.post(&url).send_json(&b),
            (_, None) => self.agent.post(&url).send_json(json!({})),
        };
        let mut resp = resp.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()?;
        unwrap_value(method, path, status, &text)
    }

    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn find(&self, css: &str) -> Result<Option<Element>> {
        Ok(self.find_all(css)?.into_iter().next())
    }

    /// Polls until `css` matches, up to `timeout`; the error names the selector so a failure says what was missing.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find(css)? {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no element matched {css:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn click(&self, el: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/click", el.0), None)
            .map(drop)
    }

    pub fn send_keys(&self, el: &Element, text: &str) -> Result<()> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    pub fn text(&self, el: &Element) -> Result<String> {
        Ok(self
            .cmd("GET", &format!("/element/{}/text", el.0), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The visible text of the first element matching `css`, or `None` when nothing matches. One script, so an
    /// element the app removes between a find and a read (a progress panel that closes as the draft lands) reads as
    /// gone instead of failing with a stale element reference.
    pub fn text_of(&self, css: &str) -> Result<Option<String>> {
        let v = self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            vec![json!(css)],
        )?;
        Ok(v.as_str().map(str::to_string))
    }

    pub fn property(&self, el: &Element, name: &str) -> Result<Value> {
        self.cmd("GET", &format!("/element/{}/property/{name}", el.0), None)
    }

    pub fn attribute(&self, el: &Element, name: &str) -> Result<Option<String>> {
        Ok(self
            .cmd("GET", &format!("/element/{}/attribute/{name}", el.0), None)?
            .as_str()
            .map(str::to_string))
    }

    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Moves the pointer onto the element (a real hover: `mouseenter` fires).
    pub fn hover(&self, el: &Element) -> Result<()> {
        let origin = json!({ ELEMENT_KEY: el.0 });
        let actions = json!({ "actions": [{
            "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
            "actions": [{ "type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": 0 }]
        }]});
        self.cmd("POST", "/actions", Some(actions)).map(drop)
    }

    /// The window's contents as PNG bytes.
    pub fn screenshot_png(&self) -> Result<Vec<u8>> {
        let b64 = self.cmd("GET", "/screenshot", None)?;
        let b64 = b64
            .as_str()
            .ok_or_else(|| anyhow!("screenshot reply is not a string"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("decoding the screenshot")
    }

    pub fn page_source(&self) -> Result<String> {
        Ok(self
            .cmd("GET", "/source", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}

/// Commands are quick; a hang means the app is stuck, which should fail fast rather than wait for the global
/// test timeout.
fn agent_for_commands() -> ureq::Agent {
    agent(Duration::from_secs(60))
}

impl Drop for Session {
    /// Deleting the session closes the app window; the driver guard kills whatever is left.
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.id);
        let _ = agent(Duration::from_secs(10)).delete(&url).call();
    }
}
