//! `d1-emulator --port 0 --data <dir> [--token <t>] [--db <uuid>=<name>]...
//! [--from-config <wrangler.jsonc>] [--create-on-use] [--request-timeout-ms <n>]
//! [--retention-days <n>] [--import-polls <n>] [--fault <spec>]... [--fleet <prefix>:<count>]...
//! [--rate-limit <requests>/<seconds>]`
//! prints `listening on http://127.0.0.1:<port>/client/v4` and serves until killed.

use std::io::Write;
use std::path::PathBuf;

use d1_emulator::{Emulator, Fault, Options};

const USAGE: &str =
    "usage: d1-emulator --port <n> --data <dir> [--token <token>] [--db <uuid>=<name>]... \
     [--from-config <wrangler.jsonc>] [--create-on-use] [--request-timeout-ms <n>] \
     [--retention-days <n>] [--import-polls <n>] [--fault METHOD:path:nth:kind[:n]]... \
     [--fleet <prefix>:<count>]... [--rate-limit <requests>/<seconds>]";

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("d1-emulator: {e}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn number(flag: &str, v: String) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{flag} takes a whole number, not `{v}`"))
}

fn run() -> Result<(), String> {
    let mut opts = Options::default();
    let mut data = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                opts.port = value()?
                    .parse()
                    .map_err(|_| "--port takes a number".to_string())?
            }
            "--data" => data = Some(PathBuf::from(value()?)),
            "--token" => opts.token = Some(value()?),
            "--db" => {
                let v = value()?;
                let (uuid, name) = v.split_once('=').ok_or("--db takes <uuid>=<name>")?;
                opts.databases.push((uuid.to_string(), name.to_string()));
            }
            "--from-config" => {
                let path = PathBuf::from(value()?);
                opts.databases.extend(Options::from_config(&path)?);
            }
            "--create-on-use" => opts.create_on_use = true,
            "--request-timeout-ms" => opts.rules.request_timeout_ms = number(&arg, value()?)?,
            "--retention-days" => opts.rules.retention_days = number(&arg, value()?)? as i64,
            "--import-polls" => opts.import_active_polls = number(&arg, value()?)? as u32,
            "--fault" => opts.faults.push(Fault::parse(&value()?)?),
            "--fleet" => {
                let v = value()?;
                let (prefix, count) = v
                    .rsplit_once(':')
                    .ok_or("--fleet takes <name prefix>:<count>, like tenant-:1000")?;
                opts.fleets.push((
                    prefix.to_string(),
                    number("--fleet", count.to_string())? as usize,
                ));
            }
            "--rate-limit" => {
                let v = value()?;
                let (n, secs) = v
                    .split_once('/')
                    .ok_or("--rate-limit takes <requests>/<seconds>, like 1200/300")?;
                opts.rate_limit = Some(d1_emulator::RateLimit {
                    requests: number("--rate-limit", n.to_string())? as u32,
                    window_ms: number("--rate-limit", secs.to_string())? * 1000,
                });
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    opts.data_dir = data.ok_or("--data <dir> is required")?;
    let emulator = Emulator::start(opts).map_err(|e| format!("cannot start: {e}"))?;
    println!("listening on {}", emulator.base_url());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
