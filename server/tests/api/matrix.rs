//! The authorisation matrix: every server function the app registers and every page, called
//! as anonymous, merchant admin of A, merchant admin of B and ops, against merchant A's
//! resources. A server function added without a row here fails the test, and so does one
//! whose checks answer differently from its row.

use app::auth::Role;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, TestUser};

/// Who calls, in the order of each row's expected statuses.
const CALLERS: [&str; 4] = ["anonymous", "admin of A", "admin of B", "ops"];

struct World {
    merchant_a: Uuid,
    merchant_b: Uuid,
    admin_a: TestUser,
    admin_b: TestUser,
    ops: TestUser,
    /// A merchant admin that ops may bind, enable and disable.
    spare_admin: TestUser,
    /// Merchant A's unfinished upload, and a finished one.
    upload_open: Uuid,
    upload_done: Uuid,
    /// A completed import job of merchant A.
    job_a: Uuid,
}

/// The arguments for one call of a server function, and the status each caller gets.
struct Row {
    form: Vec<(&'static str, String)>,
    /// For server functions that take JSON.
    json: Option<serde_json::Value>,
    expect: [u16; 4],
}

fn row(world: &World, endpoint: &str) -> Option<Row> {
    let unique = || Uuid::new_v4().simple().to_string();
    let (form, expect): (Vec<(&'static str, String)>, [u16; 4]) = match endpoint {
        // Public: anyone may try, and a wrong password is refused alike.
        "login" => {
            (vec![("email", "nobody@example.com".into()), ("password", "wrong password!".into())], [401, 401, 401, 401])
        }
        "logout" => (vec![], [200, 200, 200, 200]),
        "signed-in-user" => (vec![], [200, 200, 200, 200]),
        "list-jobs" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "list-merchants" => (vec![], [401, 200, 200, 200]),
        "list-users" => (vec![], [401, 403, 403, 200]),
        "create-merchant" => (vec![("name", format!("M-{}", unique()))], [401, 403, 403, 200]),
        "create-user" => (
            vec![
                ("email", format!("new-{}@example.com", unique())),
                ("password", "a long enough password".into()),
                ("role", "merchant_admin".into()),
                ("merchant", world.merchant_a.to_string()),
            ],
            [401, 403, 403, 200],
        ),
        "bind-merchant" => (
            vec![("user", world.spare_admin.id.to_string()), ("merchant", world.merchant_a.to_string())],
            [401, 403, 403, 200],
        ),
        "set-user-disabled" => {
            (vec![("user", world.spare_admin.id.to_string()), ("disabled", "false".into())], [401, 403, 403, 200])
        }
        "start-upload" => {
            return Some(Row {
                form: vec![],
                json: Some(serde_json::json!({
            "merchant": world.merchant_a, "files": [manifest()] })),
                expect: [401, 200, 404, 200],
            })
        }
        "unfinished-upload" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "staged-files" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "column-mappings" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "save-column-mapping" => {
            return Some(Row {
                form: vec![],
                json: Some(serde_json::json!({
                    "merchant": world.merchant_a, "layout": "voucher code\u{1f}batch",
                    "mapping": { "fields": ["Code", "BatchCode"] } })),
                expect: [401, 200, 404, 200],
            })
        }
        "batch-overview" => (vec![], [401, 200, 200, 200]),
        "finish-upload" => (vec![("upload", world.upload_done.to_string())], [401, 200, 404, 200]),
        "cancel-upload" => {
            (vec![("upload", world.upload_open.to_string()), ("remove_rows", "false".into())], [401, 200, 404, 200])
        }
        // Nothing is staged for merchant A: a permitted caller gets that answer (400).
        "start-check" => (vec![("merchant", world.merchant_a.to_string())], [401, 400, 404, 400]),
        "load-review" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "preview-rows" => {
            return Some(Row {
                form: vec![],
                json: Some(serde_json::json!({
                    "merchant": world.merchant_a, "view": app::duplicates::ReviewView::default() })),
                expect: [401, 200, 404, 200],
            })
        }
        "preflight-insert" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        "get-job" => (vec![("job", world.job_a.to_string())], [401, 200, 404, 200]),
        "verify-job" => (vec![("job", world.job_a.to_string())], [401, 200, 404, 200]),
        // A permitted caller gets past the check of the caller to the confirmation (400).
        "start-insert" => {
            (vec![("merchant", world.merchant_a.to_string()), ("confirmation", "no".into())], [401, 400, 404, 400])
        }
        "rollback-job" => (vec![("job", world.job_a.to_string()), ("confirmation", "no".into())], [401, 400, 404, 400]),
        "clear-staging" => (vec![("merchant", world.merchant_a.to_string())], [401, 200, 404, 200]),
        _ => return None,
    };
    Some(Row { form, json: None, expect })
}

fn manifest() -> app::staging::FileManifest {
    app::staging::FileManifest {
        name: "a.csv".into(),
        size: 0,
        checksum: "0".into(),
        rows: 0,
        report: Default::default(),
        restage: false,
    }
}

async fn world(app: &TestApp) -> World {
    let merchant_a = app.merchant("Merchant A").await;
    let merchant_b = app.merchant("Merchant B").await;
    let admin_a = app.user(Role::MerchantAdmin, &[merchant_a]).await;
    let done = app::staging::ssr::start_upload(&app.pool, merchant_a, admin_a.id, &[manifest()]).await.unwrap();
    app::staging::ssr::finish_upload(&app.pool, done.id).await.unwrap();
    let open = app::staging::ssr::start_upload(&app.pool, merchant_a, admin_a.id, &[manifest()]).await.unwrap();
    let job_a = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO codes_import_jobs (id, merchant_id, status, codes_inserted) VALUES ($1, $2, 'completed', 0)",
    )
    .bind(job_a)
    .bind(merchant_a)
    .execute(&app.pool)
    .await
    .unwrap();
    World {
        job_a,
        merchant_a,
        merchant_b,
        upload_open: open.id,
        upload_done: done.id,
        admin_a,
        admin_b: app.user(Role::MerchantAdmin, &[merchant_b]).await,
        ops: app.user(Role::Ops, &[]).await,
        spare_admin: app.user(Role::MerchantAdmin, &[merchant_b]).await,
    }
}

/// A fresh session per caller (logout must not end the next row's session).
async fn clients(app: &TestApp, world: &World) -> [reqwest::Client; 4] {
    [
        TestApp::new_client(),
        app.sign_in(&world.admin_a).await,
        app.sign_in(&world.admin_b).await,
        app.sign_in(&world.ops).await,
    ]
}

#[tokio::test]
async fn every_server_function_answers_each_caller_exactly_as_the_matrix_says() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let mut endpoints: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _method)| path.strip_prefix("/api/").unwrap_or(path).to_owned())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    assert!(endpoints.len() >= 10, "the app registers its server functions: {endpoints:?}");

    let mut mismatches = Vec::new();
    for endpoint in &endpoints {
        let Some(row) = row(&world, endpoint) else {
            mismatches.push(format!("{endpoint}: not in the matrix; add a row with the answer for each caller"));
            continue;
        };
        let clients = clients(&app, &world).await;
        for ((client, expected), caller) in clients.iter().zip(row.expect).zip(CALLERS) {
            let response = match &row.json {
                Some(json) => client.post(app.url(&format!("/api/{endpoint}"))).json(json).send().await.unwrap(),
                None => app.call(client, endpoint, &row.form).await,
            };
            let status = response.status().as_u16();
            // A redirect after a successful sign-in or sign-out counts as success.
            let status = if expected == 200 && (300..400).contains(&status) { 200 } else { status };
            if status != expected {
                mismatches.push(format!("{endpoint} as {caller}: expected {expected}, got {status}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "authorisation matrix mismatches:\n{}", mismatches.join("\n"));
}

#[tokio::test]
async fn what_an_answer_contains_is_limited_to_the_callers_merchants() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let [_, admin_a, admin_b, ops] = clients(&app, &world).await;
    let names = |response: reqwest::Response| async move {
        let merchants: Vec<app::auth::Merchant> = response.json().await.unwrap();
        merchants.into_iter().map(|m| m.name).collect::<Vec<_>>()
    };

    assert_eq!(names(app.call(&admin_a, "list-merchants", &[]).await).await, vec!["Merchant A"]);
    assert_eq!(names(app.call(&admin_b, "list-merchants", &[]).await).await, vec!["Merchant B"]);
    assert_eq!(names(app.call(&ops, "list-merchants", &[]).await).await, vec!["Merchant A", "Merchant B"]);
    let overview = |response: reqwest::Response| async move {
        let lines: Vec<app::batch::MerchantBatch> = response.json().await.unwrap();
        lines.into_iter().map(|line| line.merchant.name).collect::<Vec<_>>()
    };
    assert_eq!(overview(app.call(&admin_b, "batch-overview", &[]).await).await, vec!["Merchant B"]);
    assert_eq!(overview(app.call(&ops, "batch-overview", &[]).await).await, vec!["Merchant A", "Merchant B"]);
    let _ = world.merchant_b;
}

#[tokio::test]
async fn every_page_needs_a_session_and_admin_needs_ops() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let clients = clients(&app, &world).await;
    let pages: Vec<String> =
        leptos_axum::generate_route_list(app::App).into_iter().map(|listing| listing.path().to_owned()).collect();
    assert!(pages.contains(&"/jobs".to_owned()), "{pages:?}");

    let mut mismatches = Vec::new();
    for page in &pages {
        let expect: [u16; 4] = match page.as_str() {
            "/login" => [200, 200, 200, 200],
            "/admin" => [303, 403, 403, 200],
            _ => [303, 200, 200, 200],
        };
        for ((client, expected), caller) in clients.iter().zip(expect).zip(CALLERS) {
            let response = client.get(app.url(page)).send().await.unwrap();
            let status = response.status().as_u16();
            if status != expected {
                mismatches.push(format!("GET {page} as {caller}: expected {expected}, got {status}"));
            } else if status == 303 {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                if !location.starts_with("/login?next=") {
                    mismatches.push(format!("GET {page} as {caller}: redirected to {location}"));
                }
            }
        }
    }
    for (route, expected) in [("/healthz", 200), ("/pkg/no-such-file.js", 404)] {
        let status = clients[0].get(app.url(route)).send().await.unwrap().status().as_u16();
        if status != expected {
            mismatches.push(format!("GET {route} as anonymous: expected {expected}, got {status}"));
        }
    }
    assert!(mismatches.is_empty(), "page matrix mismatches:\n{}", mismatches.join("\n"));
}

#[tokio::test]
async fn the_chunk_route_answers_each_caller_exactly_as_the_matrix_says() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let [anonymous, admin_a, admin_b, ops] = clients(&app, &world).await;
    // The world's open upload expects no rows; this one takes a row from each allowed caller.
    app::staging::ssr::cancel_upload(&app.pool, world.upload_open, false).await.unwrap();
    let manifest = app::staging::FileManifest { rows: 2, ..manifest() };
    let upload =
        app::staging::ssr::start_upload(&app.pool, world.merchant_a, world.admin_a.id, &[manifest]).await.unwrap();
    let chunk = |code: &str| crate::helpers::wire_chunk(format!("2,{},{code},,,,,,\n", world.merchant_a));
    let post = |client: &reqwest::Client, seq: i32, code: &str| {
        client.post(app.url(&app::staging::chunk_path(upload.id, 0, seq))).body(chunk(code)).send()
    };

    let got = [
        post(&anonymous, 0, "A").await.unwrap().status().as_u16(),
        post(&admin_a, 0, "A").await.unwrap().status().as_u16(),
        post(&admin_b, 1, "B").await.unwrap().status().as_u16(),
        post(&ops, 1, "B").await.unwrap().status().as_u16(),
    ];

    assert_eq!(got, [401, 200, 404, 200], "as {CALLERS:?}");
}

#[tokio::test]
async fn an_id_that_is_not_the_callers_is_answered_as_one_that_does_not_exist() {
    // Seen: an unknown id answered 400 and another merchant's 403 — an existence oracle.
    let app = spawn_app().await;
    let world = world(&app).await;
    let admin_b = app.sign_in(&world.admin_b).await;
    let unknown = Uuid::new_v4();
    for (endpoint, name, foreign, extra) in [
        ("get-job", "job", world.job_a, None),
        ("verify-job", "job", world.job_a, None),
        ("rollback-job", "job", world.job_a, Some(("confirmation", "DELETE"))),
        ("finish-upload", "upload", world.upload_done, None),
        ("cancel-upload", "upload", world.upload_open, Some(("remove_rows", "false"))),
        ("load-review", "merchant", world.merchant_a, None),
        ("clear-staging", "merchant", world.merchant_a, None),
    ] {
        let call = |id: Uuid| {
            let mut form = vec![(name, id.to_string())];
            if let Some((key, value)) = extra {
                form.push((key, value.to_owned()));
            }
            let request = admin_b.post(app.url(&format!("/api/{endpoint}"))).form(&form);
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let (foreign, unknown) = (call(foreign).await, call(unknown).await);
        assert_eq!(foreign.0, 404, "{endpoint} with another merchant's {name}: {}", foreign.1);
        assert_eq!(foreign, unknown, "{endpoint}: another merchant's {name} and an unknown one differ");
    }
}

#[tokio::test]
async fn ops_naming_a_user_or_merchant_that_does_not_exist_get_404() {
    // Seen: an unknown user or merchant answered 400, as if the request were malformed.
    let app = spawn_app().await;
    let world = world(&app).await;
    let ops = app.sign_in(&world.ops).await;
    let unknown = Uuid::new_v4().to_string();
    let (user, merchant) = (world.spare_admin.id.to_string(), world.merchant_a.to_string());
    for (endpoint, form, says) in [
        ("set-user-disabled", vec![("user", unknown.clone()), ("disabled", "true".into())], "There is no such user."),
        ("bind-merchant", vec![("user", unknown.clone()), ("merchant", merchant)], "There is no such user."),
        ("bind-merchant", vec![("user", user), ("merchant", unknown.clone())], "There is no such merchant."),
    ] {
        let response = ops.post(app.url(&format!("/api/{endpoint}"))).form(&form).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!((status, body.contains(says)), (404, true), "{endpoint} {form:?}: {body}");
    }
}
