//! Times the training step (a stand-in for `meanflow bench` until the CLI lands).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = std::env::var("MATMUL_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut out = Vec::new();
    for name in if args.is_empty() {
        vec!["c1".to_string(), "c2".into(), "c3".into(), "c4".into()]
    } else {
        args
    } {
        let c = meanflow::bench::BenchConfig::by_name(&name).unwrap();
        let (w, r) = meanflow::bench::default_counts(&c);
        for loss in [
            meanflow::loss::LossPreset::Mf,
            meanflow::loss::LossPreset::Imf,
        ] {
            let m = meanflow::bench::measure(&c, loss, threads, w, r);
            println!("{}", m.json());
            out.push(m);
        }
    }
    print!("{}", meanflow::bench::table(&out));
}
