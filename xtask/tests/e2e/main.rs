//! Every end-to-end test of the xtask in one test binary, so that they share one build,
//! one link and one support module: temporary workspaces, the real xtask binary, the real
//! wrangler (installed once per run), the D1 API emulator.
//!
//! `cargo test -p xtask --test e2e <module>::` runs one group, for example
//! `cargo test -p xtask --test e2e reliability::`.

mod support;

mod adopt;
mod backup_restore;
mod baseline;
mod config_errors;
mod conformance;
mod corpus;
mod d1_rules;
mod deploy;
mod dev_server;
mod drift_lock;
mod drizzle;
mod emulator_wrangler;
mod every;
mod fleet;
mod live;
mod local_migrate;
mod messages;
mod processes;
mod provisioning;
mod real_schemas;
mod reliability;
mod remote_migrate;
mod reset_seed;
mod restore_from_env;
mod schema_drift;
mod seed_from;
mod tidy;
mod workflow;
