//! The threads that serve connections: one single-threaded tokio runtime
//! per worker, and each accepted connection pinned to one of them for its
//! whole life, the way nginx and Envoy pin a connection to a worker.
//!
//! Why not one work-stealing runtime: a request that waits (for its audit
//! entry's group commit, for SQLite) is woken by whichever thread ran the
//! waker and, on a work-stealing runtime, often finishes on the other
//! core. Its buffers are then freed across threads (the allocator's
//! remote-free path) and its connection's state (TLS session, hyper's
//! buffers) moves between caches. Pinned, a connection's memory stays with
//! one thread. BENCHMARKS.md ("seventh session") has the A/B: record gets
//! +17 %, transit encrypts +11–23 %; searches and creates unchanged.
//!
//! What it costs: the requests of one connection never use more than one
//! core (an HTTP/2 connection's streams included), and CPU-bound work in a
//! request (a large batch) holds up the other connections on its worker
//! while it runs. Many connections spread over the workers: the acceptor
//! gives each new one to the worker with the fewest open.
//!
//! The accept loop, signals and background jobs stay on the main
//! (multi-threaded) runtime. Each worker acknowledges its own requests'
//! audit entries: after a group commit, one task per worker wakes that
//! worker's waiting requests (`phivault_audit::set_ack_slot`).

use phivault_audit::RuntimeIdle;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// The connection workers (see the module docs). Dropping it stops them
/// (after their connections: stop those first) and joins their threads.
pub struct ConnWorkers {
    workers: Vec<Worker>,
    /// Counts the workers that are running (their park hooks): the audit
    /// trail's "out of work" signal.
    idle: Arc<RuntimeIdle>,
}

struct Worker {
    handle: Handle,
    open: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ConnWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnWorkers")
            .field("open", &self.open_connections())
            .finish()
    }
}

/// Counts a connection as open on its worker until dropped (the task ends
/// or is aborted).
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnWorkers {
    /// Starts `n` workers (at least one), threads `phivault-conn-{i}`.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let n = n.max(1);
        let idle = Arc::new(RuntimeIdle::new(n));
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (park, unpark) = (idle.clone(), idle.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(move || park.parked())
                .on_thread_unpark(move || unpark.unparked())
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("phivault-conn-{i}"))
                .spawn(move || {
                    phivault_audit::set_ack_slot(i);
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Self { workers, idle })
    }

    /// Told when each worker parks and unparks: a group commit's gather
    /// ends once every worker has parked (`phivault_audit::RuntimeIdle`).
    pub fn idle(&self) -> Arc<RuntimeIdle> {
        self.idle.clone()
    }

    /// The workers' runtimes, in order (worker `i` has told the audit
    /// trail it is acknowledgement slot `i`).
    pub fn handles(&self) -> Vec<Handle> {
        self.workers.iter().map(|w| w.handle.clone()).collect()
    }

    /// How many workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Open connections per worker.
    pub fn open_connections(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }

    /// Serves `tcp` with `serve` on the worker with the fewest open
    /// connections, as a task of `set`. The socket moves to that worker's
    /// reactor, so its readiness wakes that worker. A socket that can't be
    /// moved (deregistration failed) is closed.
    pub fn spawn<F, Fut>(&self, set: &mut JoinSet<()>, tcp: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("at least one worker");
        let std = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "connection dropped: its socket could not be handed to a worker");
                return;
            }
        };
        w.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(w.open.clone());
        set.spawn_on(
            async move {
                let _open = open;
                match TcpStream::from_std(std) {
                    Ok(tcp) => serve(tcp).await,
                    Err(e) => tracing::warn!(error = %e, "connection dropped: its worker could not take its socket"),
                }
            },
            &w.handle,
        );
    }
}

impl Drop for ConnWorkers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            drop(w.stop.take());
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes one line per connection and says which thread served it.
    async fn serve(mut tcp: TcpStream) {
        let mut b = [0u8; 64];
        let n = tcp.read(&mut b).await.unwrap_or(0);
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = tcp.write_all(&b[..n]).await;
        let _ = tcp.write_all(format!(" {name}").as_bytes()).await;
    }

    #[test]
    fn connections_spread_over_pinned_workers_and_are_counted_until_they_close() {
        let workers = ConnWorkers::start(2).unwrap();
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        main.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut set = JoinSet::new();
            // Four clients held open: two per worker.
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(TcpStream::connect(addr).await.unwrap());
                let (tcp, _) = l.accept().await.unwrap();
                workers.spawn(&mut set, tcp, serve);
            }
            assert_eq!(workers.open_connections(), vec![2, 2]);
            let mut served = Vec::new();
            for (i, c) in clients.iter_mut().enumerate() {
                c.write_all(format!("hello {i}").as_bytes()).await.unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).await.unwrap();
                let (echo, thread) = s.rsplit_once(' ').unwrap();
                assert_eq!(echo, format!("hello {i}"));
                served.push(thread.to_owned());
            }
            served.sort();
            assert_eq!(
                served,
                [
                    "phivault-conn-0",
                    "phivault-conn-0",
                    "phivault-conn-1",
                    "phivault-conn-1"
                ]
            );
            while set.join_next().await.is_some() {}
            assert_eq!(workers.open_connections(), vec![0, 0]);
        });
        drop(main);
        drop(workers);
    }

    #[test]
    fn an_aborted_connection_is_no_longer_counted_and_workers_stop_on_drop() {
        let workers = ConnWorkers::start(1).unwrap();
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        main.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (tcp, _) = l.accept().await.unwrap();
            let mut set = JoinSet::new();
            workers.spawn(&mut set, tcp, |_tcp| std::future::pending::<()>());
            assert_eq!(workers.open_connections(), vec![1]);
            set.abort_all();
            while set.join_next().await.is_some() {}
            assert_eq!(workers.open_connections(), vec![0]);
        });
        let t = std::time::Instant::now();
        drop(workers);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
