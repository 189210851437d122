//! The binary: prints where it listens as its first line and serves until killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn prints_its_url_and_serves() {
    let data = std::env::temp_dir().join(format!("d1-emu-bin-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_d1-emulator"))
        .args([
            "--port",
            "0",
            "--data",
            data.to_str().unwrap(),
            "--token",
            "t0k3n-value",
        ])
        .args(["--db", "00000000-0000-0000-0000-000000000001=first"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/client/v4"),
        "{url}"
    );
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = "GET /client/v4/accounts/a/d1/database?per_page=10&page=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer t0k3n-value\r\n\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"name\":\"first\""), "{reply}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(data);

    let bad = Command::new(env!("CARGO_BIN_EXE_d1-emulator"))
        .arg("--port")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
}
