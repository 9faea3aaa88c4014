//! `serve transform`: what SageMaker batch transform does with a file, for local runs and
//! benchmarks. The file is split by line into payloads of at most `MaxPayloadInMB`, the payloads
//! are POSTed to `/invocations` with up to `MaxConcurrentTransforms` requests at once (both read
//! from `/execution-parameters` unless given), and the answers are written in input order. Every
//! answer must hold one line per input line, as `AssembleWith=Line` needs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

/// What to transform and how.
#[derive(Debug, Clone)]
pub struct TransformArgs {
    /// Input file (CSV or JSON Lines, one record per line).
    pub input: PathBuf,
    /// Output file (one answer line per input line).
    pub output: PathBuf,
    /// Server address, `host:port`.
    pub addr: String,
    /// Content-Type of the payloads.
    pub content_type: String,
    /// Accept of the payloads.
    pub accept: String,
    /// Largest payload in bytes; `None` asks the server.
    pub max_payload: Option<usize>,
    /// Requests at once; `None` asks the server.
    pub concurrency: Option<usize>,
}

/// What a transform did.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSummary {
    /// Input lines (records).
    pub records: usize,
    /// Payloads sent.
    pub payloads: usize,
    /// Requests at once.
    pub concurrency: usize,
}

const USAGE: &str = "usage: serve transform --input FILE --output FILE [--addr HOST:PORT] [--content-type T] [--accept T] [--max-payload-mb N] [--concurrency N]";

/// Runs the command with the arguments after `transform`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let parsed = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("transform: {e}\n{USAGE}");
            return 2;
        }
    };
    let start = std::time::Instant::now();
    match run(&parsed).map(|s| (s, start.elapsed())) {
        Ok((s, took)) => {
            let rate = s.records as f64 / took.as_secs_f64();
            eprintln!(
                "transform: {} records in {} payloads, {} at once: {:.2} s, {rate:.0} records/s",
                s.records,
                s.payloads,
                s.concurrency,
                took.as_secs_f64()
            );
            0
        }
        Err(e) => {
            eprintln!("transform: {e}");
            1
        }
    }
}

fn parse(args: &[String]) -> Result<TransformArgs, String> {
    let mut a = TransformArgs {
        input: PathBuf::new(),
        output: PathBuf::new(),
        addr: "127.0.0.1:8080".into(),
        content_type: "text/csv".into(),
        accept: "text/csv".into(),
        max_payload: None,
        concurrency: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: '{value}' is not a whole number"))
        };
        match flag.as_str() {
            "--input" => a.input = value.into(),
            "--output" => a.output = value.into(),
            "--addr" => a.addr = value.clone(),
            "--content-type" => a.content_type = value.clone(),
            "--accept" => a.accept = value.clone(),
            "--max-payload-mb" => a.max_payload = Some(number()? * 1024 * 1024),
            "--concurrency" => a.concurrency = Some(number()?.max(1)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.input.as_os_str().is_empty() || a.output.as_os_str().is_empty() {
        return Err("--input and --output are required".into());
    }
    Ok(a)
}

/// Transforms `args.input` into `args.output` through the server.
pub fn run(args: &TransformArgs) -> Result<TransformSummary, String> {
    let (server_concurrency, server_payload) = execution_parameters(&args.addr);
    let concurrency = args.concurrency.unwrap_or(server_concurrency);
    let max_payload = args.max_payload.unwrap_or(server_payload);
    let input =
        std::fs::File::open(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let output = std::fs::File::create(&args.output)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;

    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>, usize)>(concurrency);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<Result<(usize, Vec<u8>), String>>();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (rx, tx, a) = (Arc::clone(&work_rx), done_tx.clone(), args.clone());
            std::thread::spawn(move || {
                let mut conn = None;
                loop {
                    let job = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    let Ok((index, body, lines)) = job else {
                        return;
                    };
                    let answer = post(&mut conn, &a, &body).and_then(|out| {
                        let got = out.iter().filter(|&&b| b == b'\n').count();
                        if got == lines && out.ends_with(b"\n") {
                            Ok((index, out))
                        } else {
                            Err(format!(
                                "payload {index}: {lines} input lines but {got} output lines"
                            ))
                        }
                    });
                    let failed = answer.is_err();
                    if tx.send(answer).is_err() || failed {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);

    let writer = std::thread::spawn(move || {
        write_in_order(done_rx, BufWriter::with_capacity(1 << 20, output))
    });
    let split = split_payloads(
        BufReader::with_capacity(1 << 20, input),
        max_payload,
        |index, body, lines| {
            work_tx
                .send((index, body, lines))
                .map_err(|_| "a request failed".to_owned())
        },
    );
    drop(work_tx);
    for w in workers {
        let _ = w.join();
    }
    let written = writer
        .join()
        .map_err(|_| "the writer thread panicked".to_owned())?;
    // A request error explains a failed send better than the send itself.
    let (records, payloads) = match (split, written) {
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(counts), Ok(_)) => counts,
    };
    Ok(TransformSummary {
        records,
        payloads,
        concurrency,
    })
}

/// `MaxConcurrentTransforms` and `MaxPayloadInMB` from the server, else SageMaker's defaults (1, 6 MB).
fn execution_parameters(addr: &str) -> (usize, usize) {
    let mut conn = None;
    let asked = request(&mut conn, addr, "GET", "/execution-parameters", &[], b"")
        .ok()
        .and_then(|(status, body)| {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .ok()
                .filter(|_| status == 200)?;
            Some((
                v["MaxConcurrentTransforms"].as_u64()? as usize,
                v["MaxPayloadInMB"].as_u64()? as usize,
            ))
        });
    let (c, mb) = asked.unwrap_or((1, 6));
    (c.max(1), mb.max(1) * 1024 * 1024)
}

/// Splits lines into payloads of at most `max` bytes (a longer single line is an error) and hands
/// each to `send` with its index and line count; returns (lines, payloads).
fn split_payloads(
    mut reader: impl BufRead,
    max: usize,
    mut send: impl FnMut(usize, Vec<u8>, usize) -> Result<(), String>,
) -> Result<(usize, usize), String> {
    let (mut body, mut lines, mut total, mut index) = (Vec::with_capacity(max), 0, 0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        if line.len() > max {
            return Err(format!(
                "line {} is longer than the payload limit of {max} bytes",
                total + 1
            ));
        }
        if body.len() + line.len() > max {
            send(
                index,
                std::mem::replace(&mut body, Vec::with_capacity(max)),
                lines,
            )?;
            index += 1;
            lines = 0;
        }
        body.extend_from_slice(&line);
        lines += 1;
        total += 1;
    }
    if lines > 0 {
        send(index, body, lines)?;
        index += 1;
    }
    Ok((total, index))
}

/// Writes answers in payload order as they arrive.
fn write_in_order(
    results: mpsc::Receiver<Result<(usize, Vec<u8>), String>>,
    mut out: impl Write,
) -> Result<(), String> {
    let (mut next, mut waiting) = (0usize, BTreeMap::new());
    for result in results {
        let (index, body) = result?;
        waiting.insert(index, body);
        while let Some(body) = waiting.remove(&next) {
            out.write_all(&body).map_err(|e| e.to_string())?;
            next += 1;
        }
    }
    out.flush().map_err(|e| e.to_string())
}

fn post(
    conn: &mut Option<BufReader<TcpStream>>,
    a: &TransformArgs,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let headers = [
        ("Content-Type", a.content_type.as_str()),
        ("Accept", a.accept.as_str()),
    ];
    let (status, out) = request(conn, &a.addr, "POST", "/invocations", &headers, body)?;
    if status != 200 {
        return Err(format!(
            "the server answered {status}: {}",
            String::from_utf8_lossy(&out[..out.len().min(300)])
        ));
    }
    Ok(out)
}

/// One HTTP/1.1 request on a kept-alive connection (reconnecting once if it was closed).
fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    for attempt in 0..2 {
        if conn.is_none() {
            let stream =
                TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            *conn = Some(BufReader::with_capacity(1 << 16, stream));
        }
        let c = conn.as_mut().expect("connected above");
        let sent = c
            .get_mut()
            .write_all(head.as_bytes())
            .and_then(|_| c.get_mut().write_all(body));
        // A server that refuses a body (413) answers and closes before reading all of it: the
        // answer is still there to read after the write fails.
        let answer = match (sent, read_response(c)) {
            (_, Ok(reply)) => Ok(reply),
            (Err(write), Err(_)) => Err(write.to_string()),
            (Ok(()), Err(read)) => Err(read),
        };
        match answer {
            Ok((status, out, keep)) => {
                if !keep {
                    *conn = None;
                }
                return Ok((status, out));
            }
            Err(e) if attempt == 1 => return Err(e),
            Err(_) => *conn = None,
        }
    }
    unreachable!("two attempts")
}

fn read_response(c: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>, bool), String> {
    let mut line = String::new();
    c.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed response")?;
    let (mut length, mut keep) = (None, true);
    loop {
        line.clear();
        c.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse::<usize>().ok(),
                "connection" => keep = !v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    match length {
        Some(n) => {
            out.resize(n, 0);
            c.read_exact(&mut out).map_err(|e| e.to_string())?;
        }
        None => {
            c.read_to_end(&mut out).map_err(|e| e.to_string())?;
            keep = false;
        }
    }
    Ok((status, out, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_hold_whole_lines_up_to_the_limit() {
        let mut got = Vec::new();
        let counts = split_payloads(&b"aaaa\nbb\ncccccc\nd"[..], 8, |i, body, lines| {
            got.push((i, String::from_utf8(body).unwrap(), lines));
            Ok(())
        })
        .unwrap();
        assert_eq!(counts, (4, 3));
        assert_eq!(
            got,
            vec![
                (0, "aaaa\nbb\n".into(), 2),
                (1, "cccccc\n".into(), 1),
                (2, "d\n".into(), 1)
            ]
        );
        assert!(split_payloads(&b"123456789\n"[..], 8, |_, _, _| Ok(()))
            .unwrap_err()
            .contains("line 1 is longer"));
    }

    #[test]
    fn answers_are_written_in_payload_order() {
        let (tx, rx) = mpsc::channel();
        for i in [2usize, 0, 1] {
            tx.send(Ok((i, format!("{i}\n").into_bytes()))).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        write_in_order(rx, &mut out).unwrap();
        assert_eq!(out, b"0\n1\n2\n");
    }
}
