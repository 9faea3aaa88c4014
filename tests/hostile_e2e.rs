//! `serve` and `train` against hostile and careless clients: stalled and trickling connections,
//! numbers beyond the models' range, bodies of blank lines, compressed bodies, unknown routes.

use common::datagen::Layout;
use e2e::{fire_bytes, sample_payload, text, train_small_fire_model, Sandbox, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn trained() -> &'static Sandbox {
    static MODEL: OnceLock<Sandbox> = OnceLock::new();
    MODEL.get_or_init(|| {
        let s = Sandbox::new();
        train_small_fire_model(&s, 3000);
        s
    })
}

fn ct(t: &str) -> (&'static str, &str) {
    ("Content-Type", t)
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent.
fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    text(&out)
}

#[test]
fn two_thousand_stalled_clients_take_no_prediction_slot_and_are_closed_in_time() {
    // 2,000 sockets need more than a 1,024 soft limit: the server's own helper raises it.
    serve::connections::raise_open_file_limit();
    let server = Server::ready(
        &trained().opt_ml,
        &[
            ("SERVE_READ_TIMEOUT_SECS", "2"),
            ("SERVE_MAX_IN_FLIGHT", "8"),
        ],
    );
    // Half stall inside their headers, half after 10 bytes of a declared 1 MB body.
    let opened = Instant::now();
    let mut stalled: Vec<(bool, TcpStream)> = (0..2000)
        .map(|i| {
            let mut s = connect(&server);
            let in_body = i % 2 == 1;
            let head: &[u8] = if in_body {
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n1,2,3,4,5,"
            } else {
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: te"
            };
            s.write_all(head).unwrap();
            (in_body, s)
        })
        .collect();
    let asked = Instant::now();
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv")],
        &sample_payload("fire-single.csv"),
    );
    println!(
        "with 2,000 stalled clients: {} in {:?}",
        r.status,
        asked.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Every stalled connection ends: body stalls with a 408, header stalls closed.
    for (in_body, s) in &mut stalled {
        let reply = until_closed(s);
        if *in_body {
            assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
            assert!(reply.contains("did not arrive in time"), "{reply}");
        }
    }
    let took = opened.elapsed();
    println!("2,000 stalled connections closed {took:?} after opening (read timeout 2 s)");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn trickling_headers_idle_keep_alive_and_slow_bodies_meet_their_deadlines() {
    let server = Server::ready(
        &trained().opt_ml,
        &[
            ("SERVE_READ_TIMEOUT_SECS", "1"),
            ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "3"),
        ],
    );
    // One header byte every 200 ms: closed after about 1 s.
    let mut s = connect(&server);
    let start = Instant::now();
    for b in b"POST /invocations HTTP/1.1\r\nHost: localhost\r\n"
        .iter()
        .cycle()
    {
        if s.write_all(&[*b]).is_err() || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // A keep-alive connection idle after its answer is closed after about 1 s.
    let mut s = connect(&server);
    let body = sample_payload("fire-single.csv");
    write!(s, "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(&body).unwrap();
    let start = Instant::now();
    let reply = until_closed(&mut s);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // A body that keeps trickling (a byte every 500 ms) is cut at the 3 s request deadline.
    let mut s = connect(&server);
    s.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n").unwrap();
    let start = Instant::now();
    while s.write_all(b"1").is_ok() && start.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let reply = until_closed(&mut s);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn sigterm_is_not_held_by_a_stalled_body_and_the_connection_cap_is_logged() {
    let mut server = Server::ready(
        &trained().opt_ml,
        &[
            ("SERVE_READ_TIMEOUT_SECS", "60"),
            ("SERVE_MAX_CONNECTIONS", "20"),
        ],
    );
    let mut idle: Vec<TcpStream> = (0..30).map(|_| connect(&server)).collect();
    // Connections over the cap are closed at once, and the log says why.
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        closed += usize::from(matches!(s.read(&mut b), Ok(0)));
    }
    assert!(closed >= 10, "{closed} of 30 closed");
    assert!(
        server.log().contains("connection cap reached"),
        "{}",
        server.log()
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    let mut s = connect(&server);
    s.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n1,2").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.terminate();
    let status = server.wait();
    println!(
        "SIGTERM with a stalled body: exited in {:?}",
        start.elapsed()
    );
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let reply = until_closed(&mut s);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 503"),
        "{reply}"
    );
}

#[test]
fn numbers_beyond_the_float32_range_are_refused_where_they_stand() {
    let server = Server::ready(&trained().opt_ml, &[]);
    let mut row: Vec<String> = text(&sample_payload("fire-single.csv"))
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect();
    for bad in ["1e39", "-1e39", "inf", "NaN"] {
        row[2] = bad.to_owned();
        let r = server.request(
            "POST",
            "/invocations",
            &[ct("text/csv")],
            row.join(",").as_bytes(),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            r.text().contains("record 1 (line 1): value 3 "),
            "{}",
            r.text()
        );
    }
    let json = r#"{"instances": [[1,2,1e39,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18]]}"#;
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("application/json")],
        json.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text()
            .contains("record 1: value 3 ('t_max') is outside the 32-bit float range"),
        "{}",
        r.text()
    );
    // The largest finite values still answer, with finite numbers.
    row[2] = "3.4e38".into();
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv"), ("Accept", "application/json")],
        row.join(",").as_bytes(),
    );
    assert!(r.status == 200 || r.status == 400, "{}", r.text());
    for word in ["NaN", "inf", "Infinity"] {
        assert!(!r.text().contains(word), "{}", r.text());
    }

    // Training: the file and line, and no XGBoost stack trace.
    let s = Sandbox::new();
    s.config("hyperparameters.json", r#"{"models": "random_forest,gradient_boosting", "rf_num_trees": "5", "gb_num_round": "5"}"#);
    let mut csv = text(&fire_bytes(500, 3, Layout::CsvHeader));
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[7].split(',').map(str::to_owned).collect();
    fields[3] = "1e39".into();
    lines[7] = fields.join(",");
    csv = lines.join("\n");
    s.data_file("train", "big.csv", csv.as_bytes());
    let out = s.run_train();
    assert!(!out.status.success());
    let reason = s.failure_reason().unwrap();
    assert!(
        reason.contains("big.csv: line 8") && reason.contains("32-bit float range"),
        "{reason}"
    );
    assert!(
        !reason.contains("Stack trace") && reason.len() <= 1025,
        "{reason}"
    );
}

#[test]
fn a_batch_body_of_blank_lines_is_refused_and_the_server_lives() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_BATCH", "true")]);
    // Nothing but newlines, and one record followed by newlines (the matrix is sized before the
    // blank lines are found).
    let blank = vec![b'\n'; 100 * 1024 * 1024 - 1];
    let r = server.request("POST", "/invocations", &[ct("text/csv")], &blank);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("empty body"), "{}", r.text());
    let mut body = sample_payload("fire-single.csv");
    body.resize(100 * 1024 * 1024 - 1, b'\n');
    let r = server.request("POST", "/invocations", &[ct("text/csv")], &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("line 2 is empty"), "{}", r.text());
    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
}

#[test]
fn routes_encodings_byte_order_marks_and_payload_limits() {
    let server = Server::ready(&trained().opt_ml, &[("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2")]);
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/invocations", 405),
        ("DELETE", "/ping", 405),
    ] {
        let r = server.request(method, path, &[], b"");
        assert_eq!(r.status, status, "{method} {path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], status);
    }
    let r = server.request(
        "POST",
        "/invocations",
        &[ct("text/csv"), ("Content-Encoding", "gzip")],
        b"\x1f\x8b",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(r.text().contains("Content-Encoding 'gzip'"), "{}", r.text());
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(&sample_payload("fire-single.csv"));
    let r = server.request("POST", "/invocations", &[ct("text/csv")], &bom);
    assert_eq!(r.status, 200, "{}", r.text());

    let r = server.request("GET", "/execution-parameters", &[], b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["MaxPayloadInMB"], 2, "{v}");
    // `serve transform` reports the server's 413 for a line longer than it may send.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, vec![b'1'; 3 * 1024 * 1024]).unwrap();
    let out = std::process::Command::new(e2e::binary("serve"))
        .args(["transform", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("out.csv"))
        .args([
            "--addr",
            &format!("127.0.0.1:{}", server.port),
            "--max-payload-mb",
            "100",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("413") && !err.contains("usage:"), "{err}");
}

#[test]
fn requests_http_itself_refuses_get_the_json_one_liner_too() {
    let server = Server::ready(&trained().opt_ml, &[]);
    let long_header = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4_000_000)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    for (request, status) in [
        ("GARBAGE\r\n\r\n".to_owned(), 400),
        (long_header, 431),
        (long_uri, 414),
    ] {
        let mut s = connect(&server);
        let _ = s.write_all(request.as_bytes());
        let reply = until_closed(&mut s);
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {reply}"
        );
        let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply}"));
        assert_eq!(v["error"], status, "{reply}");
    }
    assert_eq!(server.request("GET", "/ping", &[], b"").status, 200);
}

#[test]
fn careless_training_inputs_fail_with_one_clear_line() {
    // An explicitly empty member list, a symbolic-link loop in a channel, an endless line.
    let s = Sandbox::new();
    s.config("hyperparameters.json", r#"{"models": []}"#);
    s.fire_file("train", "fire.json", 500, 1, Layout::Json);
    assert!(!s.run_train().status.success());
    assert!(
        s.failure_reason().unwrap().contains("models"),
        "{:?}",
        s.failure_reason()
    );

    let s = Sandbox::new();
    s.config(
        "hyperparameters.json",
        &format!("{{{}}}", e2e::SMALL_MODELS),
    );
    s.fire_file("train", "fire.json", 1000, 1, Layout::Json);
    std::os::unix::fs::symlink("..", s.opt_ml.channel_dir("train").join("loop")).unwrap();
    let out = s.run_train();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("a loop"));

    let s = Sandbox::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![b'1'; 1 << 20];
    for _ in 0..20 {
        gz.write_all(&chunk).unwrap();
    }
    s.data_file("train", "long.csv.gz", &gz.finish().unwrap());
    assert!(!s.run_train().status.success());
    let reason = s.failure_reason().unwrap();
    assert!(
        reason.contains("long.csv.gz: line 1 is longer than 16 MiB"),
        "{reason}"
    );
}
