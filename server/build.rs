// `sqlx::migrate!` embeds the migrations at compile time, but cargo does not know it reads
// them: without this, adding a migration leaves an incremental build running the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
