//! `sqlx::migrate!` (in `db.rs`) embeds the migrations when `shared` compiles, but Cargo does
//! not know it reads them: without this, a new migration is left out until some source changes.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
