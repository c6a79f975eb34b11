use std::process::Command;

#[test]
fn an_unreachable_postgresql_gives_a_one_line_error_and_a_failing_exit() {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .env("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:1/code_import")
        .env("APP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .output()
        .expect("run the server binary");

    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(
        lines[0].starts_with("error: cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:1/code_import"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password is never printed");
    assert!(!stderr.contains("panicked"));
}
