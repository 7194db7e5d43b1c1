//! Browser tests of the admin console (issue 17): real headless Chromium, driven through
//! ChromeDriver (WebDriver, `fantoccini`), against `scimitar serve` (the built binary, as
//! deployed) on a fresh database: SQLite, or a Postgres schema when
//! SCIMITAR_TEST_POSTGRES_URL is set. Elements are found by their role and accessible name
//! as Chromium computes them (WebDriver's computed role and label), the names the issue
//! fixes for automation. What the console does is checked through `/api/v1`.
//!
//! One server and one browser session for the whole file; the cases run in order (later
//! ones build on earlier ones' data) and each reports on its own.
//!
//! ```sh
//! cargo test --test console                      # SQLite
//! SCIMITAR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo test --test console
//! cargo test --test console -- timeline          # only the cases whose name contains "timeline"
//! SCIMITAR_CONSOLE_SCREENSHOTS=docs/console cargo test --test console   # also the screenshots
//! ```
//! Needs `chromium` and `chromium-driver` (Debian; paths from SCIMITAR_CHROMIUM and
//! SCIMITAR_CHROMEDRIVER): without them it fails.

mod common;

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use common::{ServerProcess, TestDb, TOKEN};

/// How long to wait for the page to show something.
const PATIENCE: Duration = Duration::from_secs(10);
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CHROME_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=en-US",
    "--window-size=1280,900",
];

// ---------------------------------------------------------------------------------------
// Processes: ChromeDriver

/// A ChromeDriver process on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn executable(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    if !std::path::Path::new(&path).exists() {
        panic!(
            "{path} not found: the console's browser tests need Chromium and ChromeDriver \
             (Debian: apt-get install chromium chromium-driver; or set {env})"
        );
    }
    path
}

fn start_driver() -> Driver {
    let bin = executable("SCIMITAR_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}/"),
    };
    let agent = common::http_agent();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if agent
            .get(format!("{}status", driver.url))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            return driver;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not start");
}

// ---------------------------------------------------------------------------------------
// The API, from the test's side (what the console did is checked here, not in the page)

#[derive(Clone)]
struct Api {
    base: String,
    admin: String,
}

impl Api {
    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let agent = common::http_agent();
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {token}");
        let resp = match body {
            Some(b) => {
                let req = match method {
                    "POST" => agent.post(&url),
                    "PUT" => agent.put(&url),
                    "PATCH" => agent.patch(&url),
                    other => panic!("no body for {other}"),
                };
                req.header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.to_string())
            }
            None => match method {
                "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
                _ => agent.get(&url).header("Authorization", &auth).call(),
            },
        };
        let mut r = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let body = r.body_mut().read_json::<Value>().unwrap_or(Value::Null);
        (status, body)
    }

    /// `/api/v1` with the admin token; asserts a 2xx.
    #[track_caller]
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(&self.admin, method, &format!("/api/v1/{path}"), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// The items of the `/api/v1` list at `path` (its first page).
    #[track_caller]
    fn items(&self, path: &str) -> Vec<Value> {
        let page = self.admin("GET", path, None);
        page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {path}: {page}"))
            .clone()
    }

    /// SCIM with the identity provider's token; asserts a 2xx.
    #[track_caller]
    fn scim(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(TOKEN, method, &format!("/scim/v2/{path}"), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Creates the user `(given, family)` named `{given in lower case}@example.com` (also its
    /// work email), with a department and a title; returns its id.
    fn user(&self, (given, family): (&str, &str), dept: &str, title: &str) -> String {
        let user_name = format!("{}@example.com", given.to_lowercase());
        let u = self.scim(
            "POST",
            "Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": user_name,
                "name": {"givenName": given, "familyName": family},
                "displayName": format!("{given} {family}"),
                "title": title,
                "emails": [{"value": user_name, "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE: {"department": dept, "employeeNumber": "E-1001"}
            })),
        );
        u["id"].as_str().unwrap().to_string()
    }

    fn policy(&self, provisioning: &str, deprovisioning: &str) {
        self.admin(
            "PUT",
            "policy",
            Some(json!({"provisioning": provisioning, "deprovisioning": deprovisioning})),
        );
    }

    /// The account whose `key` (`userName`, `scimId`) is `value`.
    fn account_by(&self, key: &str, value: &str) -> Value {
        (self.items("accounts?limit=1000").into_iter())
            .find(|a| a[key] == value)
            .unwrap_or_else(|| panic!("no account with {key} {value}"))
    }

    /// The id of the account of the user `user_name`.
    fn account_of_name(&self, user_name: &str) -> String {
        let account = self.account_by("userName", user_name);
        account["id"].as_str().unwrap().to_string()
    }

    /// Creates the group `name` with the users `members`.
    fn group(&self, name: &str, members: &[String]) {
        let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                           "displayName": name, "members": members});
        self.scim("POST", "Groups", Some(group));
    }

    /// PATCHes the user `id` with the operations `ops`.
    fn patch_user(&self, id: &str, ops: Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": ops});
        self.scim("PATCH", &format!("Users/{id}"), Some(body));
    }

    /// Okta's deactivation: a `replace` without a path, `{"active": false}`.
    fn deactivate_okta(&self, id: &str) {
        self.patch_user(id, json!([{"op": "replace", "value": {"active": false}}]));
    }

    /// A deactivation with a path (Entra ID and HRIS bridges).
    fn deactivate(&self, id: &str) {
        self.patch_user(
            id,
            json!([{"op": "replace", "path": "active", "value": false}]),
        );
    }

    /// The account of a SCIM user.
    fn account_of(&self, scim_id: &str) -> Value {
        self.account_by("scimId", scim_id)
    }
}

// ---------------------------------------------------------------------------------------
// The page, by role and accessible name

/// WebDriver's Get Computed Role / Get Computed Label of an element.
#[derive(Debug)]
struct Computed {
    element: String,
    what: &'static str,
}

impl WebDriverCompatibleCommand for Computed {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/element/{}/{}",
            session.unwrap_or_default(),
            self.element,
            self.what
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// CSS for the elements that can have a role (a superset: the computed role decides).
fn role_selector(role: &str) -> &'static str {
    match role {
        "button" => "button, [role=button], input[type=submit]",
        "link" => "a[href]",
        "textbox" => {
            "input:not([type]), input[type=text], input[type=password], input[type=url], textarea"
        }
        "checkbox" => "input[type=checkbox]",
        "radio" => "input[type=radio]",
        "combobox" => "select",
        "heading" => "h1, h2, h3, h4",
        "region" => "section, [role=region]",
        "form" => "form, [role=form]",
        "navigation" => "nav, [role=navigation]",
        "group" => "fieldset, [role=group]",
        "row" => "tr",
        "listitem" => "li",
        other => panic!("no selector for role {other}"),
    }
}

#[derive(Clone)]
struct Ui {
    c: Client,
    base: String,
    screenshots: Option<String>,
}

type Check<'a> = Pin<Box<dyn Future<Output = bool> + 'a>>;

impl Ui {
    async fn goto(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("goto");
    }

    async fn computed(&self, e: &Element, what: &'static str) -> String {
        let v = self
            .c
            .issue_cmd(Computed {
                element: e.element_id().to_string(),
                what,
            })
            .await
            .unwrap_or(Value::Null);
        v.as_str().unwrap_or_default().trim().to_string()
    }

    /// The visible elements in `scope` (the page when None) whose role is `role` and whose
    /// accessible name is exactly `name`.
    async fn all_by_role(&self, scope: Option<&Element>, role: &str, name: &str) -> Vec<Element> {
        // A cheap superset first (elements whose text, label or aria naming contains the
        // name), then Chromium's own computed role and name decide.
        let script = r#"
            const [scope, selector, name] = arguments;
            const root = scope || document;
            const text = (el) => [
                el.getAttribute('aria-label') || '',
                (el.getAttribute('aria-labelledby') || '').split(' ')
                    .map((id) => (document.getElementById(id) || {}).textContent || '').join(' '),
                Array.from(el.labels || []).map((l) => l.textContent).join(' '),
                el.textContent || '', el.value || '',
                (el.querySelector && el.querySelector('legend') || {}).textContent || '',
            ].join(' ');
            return Array.from(root.querySelectorAll(selector)).filter((el) => {
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && text(el).includes(name);
            });
        "#;
        let args = vec![
            scope.map_or(Value::Null, |s| serde_json::to_value(s).unwrap()),
            json!(role_selector(role)),
            json!(name),
        ];
        let found = self.c.execute(script, args).await.expect("find");
        let mut out = Vec::new();
        for v in found.as_array().cloned().unwrap_or_default() {
            let id = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let e = Element::from_element_id(self.c.clone(), ElementRef::from(id));
            if self.computed(&e, "computedrole").await == role
                && self.computed(&e, "computedlabel").await == name
            {
                out.push(e);
            }
        }
        out
    }

    /// The one element with this role and name, waiting for it to appear.
    async fn by_role_in(&self, scope: Option<&Element>, role: &str, name: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut found = self.all_by_role(scope, role, name).await;
            match found.len() {
                1 => return found.remove(0),
                n if n > 1 => panic!("{n} elements with role {role} named {name:?}"),
                _ if Instant::now() > deadline => {
                    panic!(
                        "no {role} named {name:?}; the page says:\n{}",
                        self.text().await
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn by_role(&self, role: &str, name: &str) -> Element {
        self.by_role_in(None, role, name).await
    }

    /// Follows a link of the main navigation.
    async fn nav(&self, name: &str) {
        let nav = self.by_role("navigation", "Main").await;
        let link = self.by_role_in(Some(&nav), "link", name).await;
        link.click().await.expect("click");
    }

    /// Clicks the element with this role and name inside `scope` (a row, a group).
    async fn click_in(&self, scope: &Element, role: &str, name: &str) {
        self.by_role_in(Some(scope), role, name)
            .await
            .click()
            .await
            .expect("click");
    }

    async fn click(&self, role: &str, name: &str) {
        self.by_role(role, name).await.click().await.expect("click");
    }

    /// Types into the text field with this accessible name (emptied first).
    async fn fill(&self, name: &str, text: &str) {
        let e = self.by_role("textbox", name).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// The table row (or list item) whose text contains `text`.
    async fn row(&self, text: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let rows = self
                .c
                .find_all(Locator::Css("tbody tr, ul.cohorts li"))
                .await
                .expect("rows");
            for r in rows {
                if r.text().await.unwrap_or_default().contains(text) {
                    return r;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no row with {text:?}; the page says:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the page's main region (not the navigation or the status).
    async fn main_text(&self) -> String {
        match self.c.find(Locator::Id("main")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn text(&self) -> String {
        match self.c.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the status region (the `aria-live` one) says something containing `text`.
    async fn status(&self, text: &str) -> String {
        let want = text.to_string();
        self.wait(&format!("the status to say {text:?}"), move |ui| {
            let want = want.clone();
            Box::pin(async move { ui.status_now().await.contains(&want) })
        })
        .await;
        self.status_now().await
    }

    async fn status_now(&self) -> String {
        match self.c.find(Locator::Id("status")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Fills `field` of the account filters with `value`, applies them, and waits for the
    /// status to say `status`.
    async fn filter_accounts(&self, field: &str, value: &str, status: &str) {
        self.fill(field, value).await;
        self.click("button", "Apply filters").await;
        self.status(status).await;
    }

    /// Fills the SCIM filter with `filter`, which does not parse, and clicks `button`: the
    /// parser's message (with the position) is shown, and the field is marked invalid.
    async fn refused_filter(&self, filter: &str, button: &str) {
        self.fill("SCIM filter", filter).await;
        self.click("button", button).await;
        self.wait_text("at position").await;
        let field = self.by_role("textbox", "SCIM filter").await;
        assert_eq!(
            field.attr("aria-invalid").await.unwrap().as_deref(),
            Some("true")
        );
    }

    async fn wait_text(&self, text: &str) {
        let want = text.to_string();
        self.wait(&format!("the page to say {text:?}"), move |ui| {
            let want = want.clone();
            Box::pin(async move { ui.text().await.contains(&want) })
        })
        .await;
    }

    async fn wait<F>(&self, what: &str, check: F)
    where
        F: for<'a> Fn(&'a Ui) -> Check<'a>,
    {
        let deadline = Instant::now() + PATIENCE;
        while !check(self).await {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the page says:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `fetch` in the page, as a script on it could; returns (status, JSON body).
    async fn fetch(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let script = r#"
            const [method, path, body, csrf, done] = arguments;
            const headers = {'Content-Type': 'application/json'};
            const go = async () => {
                if (csrf) {
                    const s = await fetch('/admin/session').then((r) => r.json());
                    headers['X-CSRF-Token'] = s.csrfToken;
                }
                const r = await fetch(path, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
                const text = await r.text();
                return [r.status, text ? JSON.parse(text) : null];
            };
            go().then(done, (e) => done([0, String(e)]));
        "#;
        let r = self
            .c
            .execute_async(
                script,
                vec![
                    json!(method),
                    json!(path),
                    body.unwrap_or(Value::Null),
                    json!(csrf),
                ],
            )
            .await
            .expect("fetch in the page");
        (r[0].as_u64().unwrap_or(0) as u16, r[1].clone())
    }

    /// Sets the viewport (not the window) to `width` x `height` CSS pixels.
    async fn viewport(&self, width: u32, height: u32) {
        self.c.set_window_size(width, height).await.expect("resize");
        let inner = self
            .c
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("inner size");
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(0) as u32,
            inner[1].as_u64().unwrap_or(0) as u32,
        );
        if iw != width || ih != height {
            self.c
                .set_window_size(
                    width + (width - iw.min(width)),
                    height + (height - ih.min(height)),
                )
                .await
                .expect("resize");
        }
    }

    /// The focused element's tag and text.
    async fn focused(&self) -> (String, String) {
        let e = self.c.active_element().await.expect("active element");
        (
            e.tag_name().await.unwrap_or_default(),
            e.text().await.unwrap_or_default(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// The cases

struct World {
    api: Api,
    ui: Ui,
    admin_token: String,
    /// A port nothing listens on, for a webhook that always fails.
    dead_port: u16,
}

type Case = fn(Arc<World>) -> Pin<Box<dyn Future<Output = ()>>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), |w| Box::pin($name(w)))),*]
    };
}

const CASES: &[(&str, Case)] = cases![
    a_wrong_token_cannot_sign_in,
    signing_in_keeps_the_token_out_of_the_page,
    approve_makes_a_candidate_active_with_its_rules_entitlements,
    approve_group_approves_a_cohort,
    reject_removes_a_candidate,
    an_okta_deactivation_waits_in_pending_removals_until_confirmed,
    the_timeline_shows_the_deactivation_with_its_time,
    restore_keeps_a_flagged_account,
    accounts_are_filtered_by_department_and_scim_filter,
    a_state_change_without_the_csrf_token_is_refused,
    the_policies_page_sets_the_policy,
    roles_and_rules_are_edited_with_invalid_filters_explained,
    webhooks_show_dead_letters_and_replay_them,
    every_control_has_a_name_and_every_page_fits_1280_and_390,
    signing_out_ends_the_session,
];

/// Signs the browser in through the sign-in page.
async fn sign_in(w: &World) {
    let ui = &w.ui;
    ui.goto("/admin").await;
    ui.fill("Admin token", &w.admin_token).await;
    ui.click("button", "Sign in").await;
    ui.by_role("navigation", "Main").await;
}

async fn a_wrong_token_cannot_sign_in(w: Arc<World>) {
    let ui = &w.ui;
    ui.goto("/admin").await;
    ui.by_role("heading", "Sign in").await;
    ui.fill("Admin token", "scimitar_0123456789abcdef0123456789abcdef")
        .await;
    ui.click("button", "Sign in").await;
    ui.wait_text("sign-in failed").await;
    // Still signed out: no navigation, no session cookie.
    assert!(ui
        .all_by_role(None, "link", "Review queue")
        .await
        .is_empty());
    let cookies = ui.c.get_all_cookies().await.expect("cookies");
    assert!(
        cookies
            .iter()
            .all(|c| !c.name().contains("scimitar_session")),
        "{cookies:?}"
    );
    // The field says what went wrong, and is marked invalid.
    let field = ui.by_role("textbox", "Admin token").await;
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
}

async fn signing_in_keeps_the_token_out_of_the_page(w: Arc<World>) {
    let ui = &w.ui;
    ui.goto("/admin/accounts").await;
    ui.fill("Admin token", &w.admin_token).await;
    ui.click("button", "Sign in").await;
    // Signed in, on the page that was asked for, with the navigation the issue names.
    ui.by_role("heading", "Accounts").await;
    for link in [
        "Review queue",
        "Pending removals",
        "Accounts",
        "Policies",
        "Roles and rules",
        "Webhooks",
    ] {
        ui.by_role("link", link).await;
    }
    ui.by_role("button", "Sign out").await;
    // Focus moved to the page's heading.
    assert_eq!(ui.focused().await, ("h1".into(), "Accounts".into()));
    // The session cookie: HttpOnly, SameSite=Strict; the token is nowhere.
    let cookies = ui.c.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "scimitar_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert_eq!(session.path(), Some("/"));
    assert_ne!(session.value(), w.admin_token);
    let url = ui.c.current_url().await.unwrap();
    assert!(!url.as_str().contains(&w.admin_token));
    let source = ui.c.source().await.unwrap();
    assert!(!source.contains(&w.admin_token), "the token is in the page");
    // Script cannot read the cookie.
    let visible =
        ui.c.execute("return document.cookie", vec![])
            .await
            .unwrap();
    assert!(!visible
        .as_str()
        .unwrap_or_default()
        .contains(session.value()));
    // A reload keeps the session.
    ui.c.refresh().await.unwrap();
    ui.by_role("heading", "Accounts").await;
}

/// Roles, rules and the review policy of the Ramp story, through the API.
fn ramp_setup(api: &Api) -> String {
    let role = api.admin(
        "POST",
        "roles",
        Some(json!({"name": "finance-manager",
            "entitlements": {"card.monthly_limit": 5000, "card.enabled": true}})),
    );
    let role_id = role["id"].as_str().unwrap().to_string();
    api.admin(
        "POST",
        "rules",
        Some(json!({"role": role_id,
            "filter": format!("{ENTERPRISE}:department eq \"Finance\"")})),
    );
    api.policy("review", "auto");
    role_id
}

async fn approve_makes_a_candidate_active_with_its_rules_entitlements(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    ramp_setup(api);
    let ada = api.user(("Ada", "Lovelace"), "Finance", "Finance Manager");
    assert_eq!(api.account_of(&ada)["state"], "pending");

    ui.nav("Review queue").await;
    ui.by_role("heading", "Review queue").await;
    let row = ui.row("ada@example.com").await;
    let text = row.text().await.unwrap();
    // Who the candidate is, and what approval would give.
    for shown in [
        "Ada Lovelace",
        "Finance",
        "Finance Manager",
        "finance-manager",
        "card.monthly_limit = 5000",
    ] {
        assert!(text.contains(shown), "{shown} not in the row: {text}");
    }
    ui.click_in(&row, "button", "Approve").await;
    ui.status("Approved ada@example.com").await;

    let a = api.account_of(&ada);
    assert_eq!(a["state"], "active", "{a}");
    assert_eq!(a["roles"][0]["name"], "finance-manager", "{a}");
    assert_eq!(
        a["entitlements"],
        json!({"card.enabled": true, "card.monthly_limit": 5000})
    );
    // Gone from the queue.
    ui.wait("ada to leave the queue", |ui| {
        Box::pin(async move { !ui.main_text().await.contains("ada@example.com") })
    })
    .await;
}

async fn approve_group_approves_a_cohort(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    let cohort: Vec<String> = ["Bob", "Carol", "Dan"]
        .iter()
        .map(|n| api.user((n, "Hire"), "Finance", "Analyst"))
        .collect();
    let eve = api.user(("Eve", "Later"), "Sales", "Rep");
    api.group("Spring cohort", &cohort);

    ui.nav("Pending removals").await;
    ui.nav("Review queue").await;
    let group = ui.row("Spring cohort").await;
    ui.click_in(&group, "button", "Approve group").await;
    ui.status("Approved 3 accounts of Spring cohort").await;
    for id in &cohort {
        let a = api.account_of(id);
        assert_eq!(a["state"], "active", "{a}");
        assert_eq!(a["entitlements"]["card.monthly_limit"], 5000);
    }
    assert_eq!(api.account_of(&eve)["state"], "pending", "not in the group");
}

async fn reject_removes_a_candidate(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    let row = ui.row("eve@example.com").await;
    ui.click_in(&row, "button", "Reject").await;
    ui.status("Rejected eve@example.com").await;
    let page = api.admin("GET", "accounts?state=removed", None);
    assert_eq!(page["items"][0]["userName"], "eve@example.com", "{page}");
    // The queue is empty now, and says what to do next.
    ui.wait_text("No one is waiting for review.").await;
}

async fn an_okta_deactivation_waits_in_pending_removals_until_confirmed(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    api.policy("auto", "notify");
    let frank = api.user(("Frank", "Leaver"), "Finance", "Controller");
    assert_eq!(api.account_of(&frank)["state"], "active");
    // Okta deactivates with a no-path replace.
    api.deactivate_okta(&frank);
    let flagged = api.account_of(&frank);
    assert_eq!(
        flagged["removalPending"]["reason"], "deactivated",
        "{flagged}"
    );
    assert_eq!(flagged["state"], "active", "access kept until confirmed");

    ui.nav("Pending removals").await;
    ui.by_role("heading", "Pending removals").await;
    let row = ui.row("frank@example.com").await;
    assert!(row
        .text()
        .await
        .unwrap()
        .contains("Deactivated in the identity provider"));
    ui.click_in(&row, "button", "Confirm removal").await;
    ui.status("Removal of frank@example.com confirmed").await;
    let a = api.account_of(&frank);
    assert_eq!(a["state"], "suspended", "{a}");
    assert_eq!(a["roles"], json!([]));
    assert_eq!(a["entitlements"], json!({}));
    assert!(a["removalPending"].is_null());
}

async fn the_timeline_shows_the_deactivation_with_its_time(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    // The AngelList story too: under `auto`, the deactivation cuts access at once.
    api.policy("auto", "auto");
    let grace = api.user(("Grace", "Hopper"), "Finance", "Engineer");
    api.deactivate(&grace);
    let account = api.account_of(&grace);
    assert_eq!(account["state"], "suspended");
    let events = api.admin(
        "GET",
        &format!("accounts/{}/timeline", account["id"].as_str().unwrap()),
        None,
    );
    let deactivated = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "urn:ietf:params:scim:event:prov:deactivate")
        .expect("a deactivation event")
        .clone();
    // 2026-12-03T09:14:03.123456Z -> 2026-12-03 09:14:03 UTC
    let iso = deactivated["time"].as_str().unwrap();
    let shown = format!("{} {} UTC", &iso[..10], &iso[11..19]);

    ui.nav("Accounts").await;
    ui.click("link", "grace@example.com").await;
    ui.by_role("heading", "Grace Hopper").await;
    let timeline = ui.by_role("region", "Timeline").await;
    let text = timeline.text().await.unwrap();
    for expected in [
        "Deactivated in the identity provider".to_string(),
        shown,
        format!("Access cut at {}", &iso[11..19]),
        // Who did it: the identity provider's token for the deactivation.
        "by the bootstrap token".into(),
    ] {
        assert!(
            text.contains(&expected),
            "{expected} not in the timeline:\n{text}"
        );
    }
    // The deactivation's <time> element carries the exact instant.
    let times = timeline.find_all(Locator::Css("time")).await.unwrap();
    let mut exact = false;
    for t in times {
        exact |= t.attr("datetime").await.unwrap().as_deref() == Some(iso);
    }
    assert!(exact, "no <time datetime={iso}>");
    // An approval in the console names the admin credential the session came from.
    ui.nav("Accounts").await;
    ui.click("link", "ada@example.com").await;
    let timeline = ui.by_role("region", "Timeline").await;
    let text = timeline.text().await.unwrap();
    assert!(
        text.contains("Active: access granted (finance-manager)\nby token “console browser tests”"),
        "{text}"
    );
}

async fn restore_keeps_a_flagged_account(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    api.policy("auto", "notify");
    let ivy = api.user(("Ivy", "Stays"), "Finance", "Auditor");
    api.deactivate_okta(&ivy);
    ui.nav("Pending removals").await;
    let row = ui.row("ivy@example.com").await;
    ui.click_in(&row, "button", "Restore").await;
    ui.status("Restored ivy@example.com").await;
    let a = api.account_of(&ivy);
    assert_eq!(a["state"], "active", "{a}");
    assert!(a["removalPending"].is_null(), "{a}");
    assert_eq!(a["roles"][0]["name"], "finance-manager");
    // A second leaver stays flagged, for the screenshots.
    let jack = api.user(("Jack", "Leaves"), "Sales", "Rep");
    api.scim("DELETE", &format!("Users/{jack}"), None);
    api.policy("auto", "auto");
}

async fn accounts_are_filtered_by_department_and_scim_filter(w: Arc<World>) {
    let ui = &w.ui;
    ui.nav("Accounts").await;
    ui.filter_accounts("Department", "Finance", " found.").await;
    let text = ui.main_text().await;
    assert!(
        text.contains("ada@example.com") && text.contains("frank@example.com"),
        "{text}"
    );
    assert!(!text.contains("eve@example.com"), "eve is in Sales: {text}");
    // The URL keeps the filters (a reload or a shared link shows the same list).
    let url = ui.c.current_url().await.unwrap();
    assert!(url.as_str().contains("department=Finance"), "{url}");
    // An advanced filter that does not parse is explained at the field.
    ui.c.find(Locator::Css("details.wide summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    ui.refused_filter("title eq", "Apply filters").await;
    ui.filter_accounts("SCIM filter", "title co \"Manager\"", " found.")
        .await;
    let text = ui.main_text().await;
    assert!(text.contains("ada@example.com"), "{text}");
    assert!(
        !text.contains("frank@example.com"),
        "frank is a Controller: {text}"
    );
    ui.click("button", "Clear filters").await;
    ui.wait_text("eve@example.com").await;
    // A quick search by part of a name.
    ui.filter_accounts("Search", "lovel", "1 account found")
        .await;
    assert!(ui.main_text().await.contains("ada@example.com"));
    ui.click("button", "Clear filters").await;
    ui.wait_text("eve@example.com").await;
}

async fn a_state_change_without_the_csrf_token_is_refused(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    let before = api.admin("GET", "policy", None);
    let change = json!({"provisioning": "review", "deprovisioning": "notify"});
    // A script in the page (the cookie goes along, the token does not).
    let (status, body) = ui
        .fetch("PUT", "/api/v1/policy", Some(change.clone()), false)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(api.admin("GET", "policy", None), before, "nothing changed");
    // Reads need no token; the same change with it goes through.
    let (status, _) = ui.fetch("GET", "/api/v1/policy", None, false).await;
    assert_eq!(status, 200);
    let (status, body) = ui
        .fetch("PUT", "/api/v1/policy", Some(change.clone()), true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.admin("GET", "policy", None), change);
    api.policy(
        before["provisioning"].as_str().unwrap(),
        before["deprovisioning"].as_str().unwrap(),
    );
}

async fn the_policies_page_sets_the_policy(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    api.policy("auto", "auto");
    ui.nav("Policies").await;
    ui.by_role("heading", "Policies").await;
    let provisioning = ui
        .by_role("group", "When the identity provider adds a user")
        .await;
    ui.click_in(&provisioning, "radio", "Review").await;
    let deprovisioning = ui
        .by_role(
            "group",
            "When the identity provider deactivates or deletes a user",
        )
        .await;
    ui.click_in(&deprovisioning, "radio", "Notify").await;
    ui.click("button", "Save policies").await;
    ui.status("Policies saved").await;
    assert_eq!(
        api.admin("GET", "policy", None),
        json!({"provisioning": "review", "deprovisioning": "notify"})
    );
}

async fn roles_and_rules_are_edited_with_invalid_filters_explained(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    ui.nav("Roles and rules").await;
    ui.by_role("heading", "Roles and rules").await;
    ui.fill("Role name", "card-holder").await;
    let form = ui.by_role("form", "New role").await;
    let key = ui.all_by_role(Some(&form), "textbox", "Key").await;
    key[0].send_keys("card.monthly_limit").await.unwrap();
    let value = ui.all_by_role(Some(&form), "textbox", "Value").await;
    value[0].send_keys("250").await.unwrap();
    ui.click("button", "Create role").await;
    ui.status("Role card-holder created").await;
    let role = (api.items("roles").into_iter())
        .find(|r| r["name"] == "card-holder")
        .expect("the new role");
    assert_eq!(role["entitlements"], json!({"card.monthly_limit": 250}));

    // A rule with a broken filter: the parser's message and position, at the field.
    let rule_form = ui.by_role("form", "New rule").await;
    let select = ui
        .by_role_in(Some(&rule_form), "combobox", "Role to grant")
        .await;
    select.select_by_label("card-holder").await.unwrap();
    ui.refused_filter("title co \"Analyst\" and (", "Add rule")
        .await;
    // The position is drawn under the filter too.
    let caret = ui.c.find(Locator::Css("pre.caret")).await.unwrap();
    let drawn = caret.text().await.unwrap();
    assert!(
        drawn.ends_with(&format!("{}^", " ".repeat(24))),
        "{drawn:?}"
    );
    // A preview says how many accounts a valid rule would match before it is saved.
    ui.fill("SCIM filter", "title co \"Analyst\"").await;
    ui.click("button", "Preview matches").await;
    ui.wait_text("Would match 3 accounts now").await;
    let rules_before = api.items("rules").len();
    // One rule more than before, and it grants the role for `filter`.
    let added = |filter: &str| {
        let rules = api.items("rules");
        assert_eq!(rules.len(), rules_before + 1);
        assert!(
            rules
                .iter()
                .any(|r| r["role"] == role["id"] && r["filter"] == filter),
            "no rule for {filter}: {rules:?}"
        );
    };

    ui.fill("SCIM filter", "title co \"Analyst\"").await;
    ui.click("button", "Add rule").await;
    ui.status("Rule added").await;
    added("title co \"Analyst\"");

    // Editing a rule: the form comes back filled in, and saving replaces it.
    ui.click(
        "button",
        "Edit the rule granting card-holder to users matching a filter",
    )
    .await;
    ui.by_role("heading", "Edit the rule granting card-holder")
        .await;
    ui.fill(
        "SCIM filter",
        "title co \"Analyst\" or title eq \"Auditor\"",
    )
    .await;
    ui.click("button", "Save rule").await;
    ui.status("Rule saved").await;
    added("title co \"Analyst\" or title eq \"Auditor\"");
}

async fn webhooks_show_dead_letters_and_replay_them(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    ui.nav("Webhooks").await;
    ui.by_role("heading", "Webhooks").await;
    ui.wait_text("No subscriptions yet.").await;
    let url = format!("http://127.0.0.1:{}/hooks", w.dead_port);
    ui.fill("Endpoint URL", &url).await;
    ui.click("button", "Add subscription").await;
    ui.status("Subscription added").await;
    ui.wait_text("whsec_").await;
    ui.click("button", "I have stored it").await;
    let hooks = api.admin("GET", "webhooks", None);
    let hook = hooks["items"][0]["id"].as_str().unwrap().to_string();
    // The receiver is down: a change now goes to dead letters (the test server's retry
    // horizon is 2 s).
    let _ = api.user(("Henry", "Ford"), "Ops", "Driver");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dead = api.admin("GET", &format!("webhooks/{hook}/dead-letters"), None);
        if !dead["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ui.nav("Accounts").await;
    ui.nav("Webhooks").await;
    let dead = api.admin("GET", &format!("webhooks/{hook}/dead-letters"), None);
    let first = &dead["items"][0];
    let label = format!(
        "Replay delivery {} ({})",
        first["seq"],
        first["type"].as_str().unwrap()
    );
    ui.click("button", &label).await;
    ui.status(&format!("Delivery {} queued again", first["seq"]))
        .await;
    let d = api.admin(
        "GET",
        &format!("webhooks/{hook}/dead-letters?limit=1000"),
        None,
    );
    assert!(
        d["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != first["id"]),
        "replayed, so no longer dead (until it fails again)"
    );
}

const PAGES: &[(&str, &str)] = &[
    ("/admin/review", "Review queue"),
    ("/admin/removals", "Pending removals"),
    ("/admin/accounts", "Accounts"),
    ("/admin/policies", "Policies"),
    ("/admin/roles", "Roles and rules"),
    ("/admin/webhooks", "Webhooks"),
];

async fn every_control_has_a_name_and_every_page_fits_1280_and_390(w: Arc<World>) {
    let (api, ui) = (&w.api, &w.ui);
    // Every page with something on it: candidates and a cohort waiting, removals flagged.
    api.policy("auto", "notify");
    let nora = api.user(("Nora", "Quits"), "Finance", "Analyst");
    api.deactivate(&nora);
    api.policy("review", "notify");
    let interns: Vec<String> = [("Kim", "Lee"), ("Leo", "Park")]
        .iter()
        .map(|&name| api.user(name, "Finance", "Intern"))
        .collect();
    api.group("Summer interns", &interns);
    api.user(("Mia", "Wong"), "Sales", "Account Executive");
    let grace = api.account_of_name("grace@example.com");
    let mut pages: Vec<(String, String)> = PAGES
        .iter()
        .map(|(p, h)| (p.to_string(), h.to_string()))
        .collect();
    pages.push((format!("/admin/accounts/{grace}"), "Grace Hopper".into()));
    for width in [1280, 390] {
        ui.viewport(width, 900).await;
        for (path, heading) in &pages {
            ui.goto(path).await;
            ui.by_role("heading", heading).await;
            // Nothing wider than the viewport: no sideways scrolling.
            let sizes =
                ui.c.execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth]",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                sizes[0].as_u64() <= sizes[1].as_u64(),
                "{path} at {width}px scrolls sideways: {sizes}"
            );
            // Every control has an accessible name, as Chromium computes it.
            let controls =
                ui.c.find_all(Locator::Css("button, input, select, textarea, a[href]"))
                    .await
                    .unwrap();
            for c in controls {
                if !c.is_displayed().await.unwrap_or(false) {
                    continue;
                }
                let name = ui.computed(&c, "computedlabel").await;
                let html = c.html(false).await.unwrap_or_default();
                assert!(!name.is_empty(), "{path}: a control without a name: {html}");
            }
            if let Some(dir) = &ui.screenshots {
                screenshot(ui, dir, path, width).await;
            }
        }
    }
    ui.viewport(1280, 900).await;
}

/// A full-page screenshot (the window grown to the page's height) into `dir`.
async fn screenshot(ui: &Ui, dir: &str, path: &str, width: u32) {
    let name = match path.trim_start_matches("/admin/") {
        p if p.starts_with("accounts/") => "account".to_string(),
        p => p.to_string(),
    };
    let height =
        ui.c.execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 6000) as u32;
    ui.viewport(width, height).await;
    let png = ui.c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(dir).expect("screenshot directory");
    std::fs::write(format!("{dir}/{name}-{width}.png"), png).expect("write screenshot");
    ui.viewport(width, 900).await;
}

async fn signing_out_ends_the_session(w: Arc<World>) {
    let ui = &w.ui;
    ui.goto("/admin/review").await;
    ui.click("button", "Sign out").await;
    ui.by_role("heading", "Sign in").await;
    ui.wait_text("You are signed out.").await;
    let (status, body) = ui.fetch("GET", "/api/v1/policy", None, false).await;
    assert_eq!(status, 401, "{body}");
    let cookies = ui.c.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "scimitar_session"),
        "{cookies:?}"
    );
    if let Some(dir) = &ui.screenshots {
        for width in [1280, 390] {
            ui.viewport(width, 900).await;
            ui.goto("/admin").await;
            ui.by_role("heading", "Sign in").await;
            screenshot(ui, dir, "/admin/sign-in", width).await;
        }
        ui.viewport(1280, 900).await;
    }
}

// ---------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<u32>().is_err())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(filters))
}

async fn run(filters: Vec<String>) -> ExitCode {
    let chromium = executable("SCIMITAR_CHROMIUM", "/usr/bin/chromium");
    let driver = start_driver();
    let db = TestDb::new();
    let backend = if db.is_postgres() {
        "Postgres"
    } else {
        "SQLite"
    };
    let log = tempfile::NamedTempFile::new().expect("log file");
    let server = ServerProcess::start(
        &db,
        &[
            "--admin-sign-in-limit",
            "100/minute",
            // The webhook test's receiver is on loopback, which the default policy refuses.
            "--webhook-allowed-hosts",
            "loopback",
            "--webhook-backoff-ms",
            "50",
            "--webhook-max-backoff-ms",
            "200",
            "--webhook-retry-horizon-secs",
            "2",
            "--webhook-poll-ms",
            "100",
            "--webhook-timeout-ms",
            "1000",
        ],
        "info",
        Stdio::from(log.reopen().expect("log")),
    );
    let admin_token = {
        let pool = scimitar::storage::pool::open(&db.url, scimitar::config::SqliteSync::Normal, 1)
            .expect("open the test database");
        let mut conn = pool.get().expect("connection");
        scimitar::provisioning::tenancy::create_token(
            &mut conn,
            "default",
            Some("console browser tests"),
            scimitar::auth::Scope::Admin,
            None,
        )
        .expect("admin token")
        .1
    };
    let profile = tempfile::tempdir().expect("profile directory");
    let mut args: Vec<String> = CHROME_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": args}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through ChromeDriver");
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let world = Arc::new(World {
        api: Api {
            base: server.url.clone(),
            admin: admin_token.clone(),
        },
        ui: Ui {
            c: client.clone(),
            base: server.url.clone(),
            screenshots: std::env::var("SCIMITAR_CONSOLE_SCREENSHOTS").ok(),
        },
        admin_token: admin_token.clone(),
        dead_port,
    });
    world.ui.viewport(1280, 900).await;

    // A failed assertion reports its message and place, and the run goes on.
    std::panic::set_hook(Box::new(|info| println!("    {info}")));
    let selected =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let chosen: Vec<&(&str, Case)> = CASES.iter().filter(|(n, _)| selected(n)).collect();
    println!(
        "\nrunning {} console browser tests ({backend})",
        chosen.len()
    );
    if !selected("signing_in_keeps_the_token_out_of_the_page") {
        // The cases after it expect a signed-in browser.
        sign_in(&world).await;
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in chosen {
        ran += 1;
        let started = Instant::now();
        // A case's panic ends its task, not the run.
        let w = world.clone();
        let ok = tokio::task::LocalSet::new()
            .run_until(async move { tokio::task::spawn_local(case(w)).await })
            .await
            .is_ok();
        println!(
            "test {name} ... {} ({:.1} s)",
            if ok { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    let _ = client.close().await;
    drop(server);

    // The browser's whole session left no credential in the server's log.
    let logged = std::fs::read_to_string(log.path()).unwrap_or_default();
    let leaked = logged.contains(&admin_token);
    if leaked {
        println!("FAILED: the admin token is in the server log");
    }
    println!(
        "\ntest result: {}. {} passed; {} failed ({backend})",
        if failed.is_empty() && !leaked {
            "ok"
        } else {
            "FAILED"
        },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() && !leaked && ran > 0 {
        ExitCode::SUCCESS
    } else {
        for f in failed {
            println!("    {f}");
        }
        ExitCode::FAILURE
    }
}
