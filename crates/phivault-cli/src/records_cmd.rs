//! `phivault records …`: declare collections, import records, follow jobs,
//! rotate and shred, through the server's API with a client certificate.

use crate::cli::{Global, RecordsArgs, RecordsCommand};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use phivault_server::client::ApiClient;
use serde_json::{Value, json};
use std::io::BufRead;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

fn client(g: &Global, a: &RecordsArgs) -> Result<ApiClient> {
    let d = &g.data_dir;
    let ca = a.ca.clone().unwrap_or_else(|| d.join("ca").join("ca.pem"));
    let cert = a
        .cert
        .clone()
        .unwrap_or_else(|| d.join("clients").join("admin.pem"));
    let key = a.key.clone().unwrap_or_else(|| cert.with_extension("key"));
    let addr = a.addr.trim_start_matches("https://").trim_end_matches('/');
    ApiClient::new(addr, &ca, &cert, &key).with_context(|| {
        "reading the client certificate: give --cert/--key/--ca (defaults: DATA/clients/admin.pem, DATA/ca/ca.pem)"
    })
}

fn check(code: u16, v: &Value) -> Result<()> {
    if (200..300).contains(&code) {
        return Ok(());
    }
    let msg = v["errors"]
        .as_array()
        .and_then(|e| e.first())
        .and_then(Value::as_str)
        .unwrap_or("request failed");
    bail!("server answered {code}: {msg}")
}

fn print(g: &Global, v: &Value, text: impl FnOnce()) {
    if g.json {
        println!("{v}");
    } else {
        text();
    }
}

fn bar(g: &Global, len: u64, what: &str) -> Option<ProgressBar> {
    if g.quiet || g.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("template")
        .progress_chars("=> "),
    );
    Some(b)
}

async fn follow(g: &Global, c: &mut ApiClient, job: &str) -> Result<Value> {
    let mut pb: Option<ProgressBar> = None;
    loop {
        let (code, v) = c.call("GET", &format!("/v1/jobs/{job}"), &[], None).await?;
        check(code, &v)?;
        let (done, total) = (
            v["done"].as_u64().unwrap_or(0),
            v["total"].as_u64().unwrap_or(0),
        );
        if pb.is_none() {
            pb = bar(g, total, v["kind"].as_str().unwrap_or("job"));
        }
        if let Some(b) = &pb {
            b.set_length(total.max(done));
            b.set_position(done);
        }
        match v["state"].as_str() {
            Some("running") => tokio::time::sleep(Duration::from_millis(250)).await,
            Some("failed") => {
                if let Some(b) = pb {
                    b.abandon();
                }
                bail!("job {job} failed: {}", v["error"].as_str().unwrap_or("?"))
            }
            _ => {
                if let Some(b) = pb {
                    b.finish_and_clear();
                }
                return Ok(v);
            }
        }
    }
}

fn plan_table(v: &Value) {
    if let Some(ix) = v["indexes"].as_array() {
        println!(
            "{:<24} {:>5} {:>14}  FIELDS",
            "INDEX", "BITS", "MATCHES/VALUE"
        );
        for i in ix {
            println!(
                "{:<24} {:>5} {:>14.1}  {}",
                i["name"].as_str().unwrap_or(""),
                i["bits"],
                i["expected_matches_per_value"].as_f64().unwrap_or(0.0),
                i["fields"]
                    .as_array()
                    .map(|f| f
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" + "))
                    .unwrap_or_default()
            );
        }
    }
}

pub fn run(g: &Global, a: &RecordsArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(g, a))
}

async fn run_async(g: &Global, a: &RecordsArgs) -> Result<ExitCode> {
    let mut c = client(g, a)?;
    match &a.command {
        RecordsCommand::Apply {
            collection,
            schema,
            wait,
        } => {
            let text =
                std::fs::read(schema).with_context(|| format!("reading {}", schema.display()))?;
            let body: Value = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not JSON", schema.display()))?;
            let (code, v) = c
                .call(
                    "POST",
                    &format!("/v1/collections/{collection}"),
                    &[],
                    Some(&body),
                )
                .await?;
            check(code, &v)?;
            print(g, &v, || {
                println!("collection {collection}: schema version {}", v["version"]);
                plan_table(&v);
            });
            if let Some(job) = v["migration_job"].as_str() {
                if *wait {
                    let j = follow(g, &mut c, job).await?;
                    print(g, &j, || {
                        println!(
                            "re-sealed {} records under version {}",
                            j["done"], v["version"]
                        )
                    });
                } else if !g.json {
                    println!(
                        "existing records are being re-sealed: `phivault records job {job} --wait`"
                    );
                }
            }
        }
        RecordsCommand::Show { collection } => {
            let (code, v) = c
                .call("GET", &format!("/v1/collections/{collection}"), &[], None)
                .await?;
            check(code, &v)?;
            print(g, &v, || {
                println!("collection {collection}: schema version {}", v["version"]);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v["schema"]).unwrap_or_default()
                );
                plan_table(&v);
            });
        }
        RecordsCommand::List => {
            let (code, v) = c.call("GET", "/v1/collections", &[], None).await?;
            check(code, &v)?;
            print(g, &v, || {
                for x in v["collections"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32} v{}",
                        x["collection"].as_str().unwrap_or(""),
                        x["version"]
                    );
                }
            });
        }
        RecordsCommand::Import {
            collection,
            file,
            batch,
        } => {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let total = std::io::BufReader::new(std::fs::File::open(file)?)
                .lines()
                .count() as u64;
            let pb = bar(g, total, "import");
            let mut chunk = Vec::new();
            let mut n = 0u64;
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                // The line number only: never the line, which is PHI.
                let v: Value = serde_json::from_str(&line).with_context(|| {
                    format!("{} line {}: not a JSON object", file.display(), i + 1)
                })?;
                chunk.push(v);
                if chunk.len() >= *batch {
                    n += send_bulk(&mut c, collection, std::mem::take(&mut chunk)).await?;
                    if let Some(b) = &pb {
                        b.set_position(n);
                    }
                }
            }
            if !chunk.is_empty() {
                n += send_bulk(&mut c, collection, chunk).await?;
            }
            if let Some(b) = pb {
                b.finish_and_clear();
            }
            print(g, &json!({ "imported": n }), || {
                println!("imported {n} records into {collection}")
            });
        }
        RecordsCommand::Job { id, wait } => {
            let v = if *wait {
                follow(g, &mut c, id).await?
            } else {
                let (code, v) = c.call("GET", &format!("/v1/jobs/{id}"), &[], None).await?;
                check(code, &v)?;
                v
            };
            print(g, &v, || {
                println!(
                    "job {id}: {} {} on {}: {}/{} ({}%)",
                    v["kind"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or(""),
                    v["collection"].as_str().unwrap_or(""),
                    v["done"],
                    v["total"],
                    v["percent"]
                )
            });
        }
        RecordsCommand::Rotate {
            collection,
            destroy_old,
            wait,
        } => {
            let (code, v) = c
                .call(
                    "POST",
                    &format!("/v1/collections/{collection}/rotate"),
                    &[],
                    Some(&json!({ "destroy_old": destroy_old })),
                )
                .await?;
            check(code, &v)?;
            let job = v["rewrap_job"].as_str().unwrap_or_default().to_string();
            if *wait {
                follow(g, &mut c, &job).await?;
            }
            print(g, &v, || {
                println!(
                    "collection ring records/{collection} is at version {}; rewrap job {job}{}",
                    v["version"],
                    if *destroy_old {
                        " (older versions are destroyed when it completes)"
                    } else {
                        ""
                    }
                )
            });
        }
        RecordsCommand::Shred {
            subject,
            collection,
        } => {
            let mut path = format!("/v1/subjects/{}", urlencode(subject));
            if let Some(cn) = collection {
                path.push_str(&format!("?collection={cn}"));
            }
            let (code, v) = c.call("DELETE", &path, &[], None).await?;
            check(code, &v)?;
            // The receipt is the record of the shred: always print it whole.
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send_bulk(c: &mut ApiClient, collection: &str, chunk: Vec<Value>) -> Result<u64> {
    let body = json!({ "records": chunk });
    let (code, v) = c
        .call(
            "POST",
            &format!("/v1/records/{collection}/bulk"),
            &[],
            Some(&body),
        )
        .await?;
    check(code, &v)?;
    Ok(v["ids"].as_array().map_or(0, |a| a.len()) as u64)
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
