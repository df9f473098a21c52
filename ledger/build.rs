//! `sqlx::migrate!` embeds `migrations/` at compile time; without this, adding a migration
//! file alone would not rebuild the ledger, and it would start without it.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
