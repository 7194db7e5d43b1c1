// Embedded migrations (diesel_migrations::embed_migrations!) are read at compile time:
// rebuild whenever a migration changes so the binary never carries stale ones.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
