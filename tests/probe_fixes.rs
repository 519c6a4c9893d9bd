//! The hostile probe's findings (issue 26), each fixed as a class and checked here for every
//! command it touches: bad input is exit 2, one `error:` line, and the folder as it was
//! ([`common::refused`]).
//!
//! 1. scikit-learn's header declares the last column the classes: without `--label-column` the file
//!    is refused, not trained (or compared) with the classes as a coordinate.
//! 2. An output through a loop of symbolic links is refused, and the link stays a link.
//! 3. An output folder that cannot be written is refused before the work (`quality --json`,
//!    `study --out`), as every other output is.
//! 4. A name over 255 bytes, or a path over 4095, is refused before the work, for every output.
//! 5. Count flags of `data`, `eval`, `study` and `quality` have the shared range message.
//! 6. A CSV value that overflows f64 (`1e400`) is out of range, in the flags' words.

mod common;

use common::{refused, run, scratch, succeeds};
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    scratch("probe_fixes", name)
}

/// scikit-learn's iris.csv as shipped (150 rows, 4 features, the class last).
fn iris_into(dir: &Path) -> &'static str {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tabular/iris.csv");
    std::fs::copy(from, dir.join("iris.csv")).unwrap();
    "iris.csv"
}

/// A small file of 2-D points without a header.
fn points_into(dir: &Path, name: &str) {
    let text: String = (0..40)
        .map(|i| format!("{},{}\n", i as f64 * 0.1, (i % 7) as f64))
        .collect();
    std::fs::write(dir.join(name), text).unwrap();
}

const TINY: [&str; 10] = [
    "--steps",
    "3",
    "--width",
    "8",
    "--depth",
    "1",
    "--batch",
    "16",
    "--eval-every",
    "0",
];

fn train_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train"];
    args.extend_from_slice(&TINY);
    args.extend_from_slice(extra);
    args
}

#[test]
fn scikit_learn_files_need_their_label_column() {
    let d = dir("sklearn");
    let iris = iris_into(&d);
    let classes = "scikit-learn's header says the last column holds the classes (\"setosa\", \"versicolor\", \"virginica\")";
    refused(
        &d,
        &train_args(&["--dataset", iris, "--out", "run"]),
        &[
            "iris.csv: ",
            classes,
            "give --label-column -1 (or --label-column -1 --unconditional to model the features alone)",
        ],
    );
    // Counts that are not the file's, a `;` file: the same.
    std::fs::write(d.join("odd.csv"), "9;2;a;b\n1;2;0\n3;4;1\n5;6;0\n").unwrap();
    refused(
        &d,
        &train_args(&["--dataset", "odd.csv", "--out", "run"]),
        &["odd.csv: scikit-learn's header", "(\"a\", \"b\")"],
    );
    // eval, as samples or as data: the class column would be compared as a coordinate.
    points_into(&d, "s.csv");
    for args in [
        ["eval", "--samples", iris, "--dataset", "two_moons"],
        ["eval", "--samples", "s.csv", "--data", iris],
    ] {
        refused(&d, &args, &[classes, "eval compares every column"]);
    }
    // Read as the format says: 4 features, 3 classes, or the features alone.
    for (out, extra, classes) in [
        ("labelled", None, 3),
        ("features", Some("--unconditional"), 0),
    ] {
        let mut args = train_args(&["--dataset", iris, "--label-column", "-1", "--out", out]);
        args.extend(extra);
        succeeds(&d, &args);
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(out).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["train"]["model"]["dim"], 4, "{out}: {config}");
        assert_eq!(config["train"]["model"]["classes"], classes, "{out}");
    }
    // A file whose rows are the declared features alone has no class column: read whole.
    std::fs::write(d.join("features.csv"), "3,2,a,b\n1,2\n3,4\n5,6\n").unwrap();
    succeeds(
        &d,
        &[
            "eval",
            "--samples",
            "features.csv",
            "--data",
            "features.csv",
        ],
    );
}

#[cfg(unix)]
#[test]
fn outputs_through_a_loop_of_links_are_refused_and_the_links_stay() {
    use std::os::unix::fs::symlink;
    let d = dir("loop");
    symlink("b.csv", d.join("a.csv")).unwrap();
    symlink("a.csv", d.join("b.csv")).unwrap();
    symlink("self", d.join("self")).unwrap();
    points_into(&d, "s.csv");
    let loops = "too many levels of symbolic links";
    refused(
        &d,
        &[
            "data",
            "--dataset",
            "two_moons",
            "--n",
            "3",
            "--out",
            "a.csv",
        ],
        &["--out a.csv: ", loops],
    );
    // Every output, and a loop in the folder part of the path.
    refused(
        &d,
        &["data", "--dataset", "two_moons", "--out", "self/x.csv"],
        &["--out self/x.csv: ", loops],
    );
    refused(
        &d,
        &[
            "eval",
            "--samples",
            "s.csv",
            "--data",
            "s.csv",
            "--json",
            "b.csv",
        ],
        &["--json b.csv: ", loops],
    );
    refused(
        &d,
        &["study", "identity", "--quick", "--out", "self"],
        &["--out self: ", loops],
    );
    for link in ["a.csv", "b.csv", "self"] {
        let meta = std::fs::symlink_metadata(d.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is no longer a link");
    }
    // Below the commands too: the write refuses the loop and leaves the link.
    let e = meanflow::io::atomic::write_atomically(&d.join("a.csv"), b"1,2\n").unwrap_err();
    assert!(meanflow::io::atomic::is_symlink_loop(&e), "{e}");
    assert!(std::fs::symlink_metadata(d.join("a.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A dangling chain is followed to the file it names, the links staying.
    symlink("c.csv", d.join("chain.csv")).unwrap();
    symlink("target.csv", d.join("c.csv")).unwrap();
    succeeds(
        &d,
        &[
            "data",
            "--dataset",
            "two_moons",
            "--n",
            "3",
            "--out",
            "chain.csv",
        ],
    );
    assert!(d.join("target.csv").is_file());
    assert!(std::fs::symlink_metadata(d.join("chain.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[cfg(unix)]
#[test]
fn folders_that_cannot_be_written_are_refused_before_the_work() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("read_only");
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let cases: [&[&str]; 3] = [
        // The --json check comes before the checkpoint is read.
        &[
            "quality",
            "--checkpoint",
            "missing.safetensors",
            "--json",
            "ro/q.json",
        ],
        &["study", "identity", "--quick", "--out", "ro"],
        &["study", "identity", "--quick", "--out", "ro/new/study"],
    ];
    for args in cases {
        let flag = args[args.len() - 2];
        let path = args[args.len() - 1];
        refused(
            &d,
            args,
            &[&format!("{flag} {path}: "), "cannot write in the folder ro"],
        );
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn names_too_long_for_the_os_are_refused_before_the_work() {
    let d = dir("long_names");
    points_into(&d, "s.csv");
    let long = "a".repeat(300);
    let file = format!("{long}.csv");
    let too_long = "is 304 bytes long; a file or folder name has at most 255 bytes";
    refused(
        &d,
        &["data", "--dataset", "two_moons", "--n", "3", "--out", &file],
        &[too_long],
    );
    let png = format!("{long}.png");
    let in_folder = format!("{long}/x.csv");
    for (flag, path) in [("--json", file.as_str()), ("--json", in_folder.as_str())] {
        refused(
            &d,
            &["eval", "--samples", "s.csv", "--data", "s.csv", flag, path],
            &["bytes long; a file or folder name has at most 255 bytes"],
        );
    }
    refused(
        &d,
        &["study", "identity", "--quick", "--out", &long],
        &["is 300 bytes long", "at most 255 bytes"],
    );
    refused(
        &d,
        &[
            "quality",
            "--checkpoint",
            "missing.safetensors",
            "--json",
            &png,
        ],
        &[too_long],
    );
    // A path over PATH_MAX made of short names.
    let deep = format!("{}x.csv", "abcdefgh/".repeat(500));
    refused(
        &d,
        &["data", "--dataset", "two_moons", "--n", "3", "--out", &deep],
        &["the path is 4505 bytes long; at most 4095 bytes are allowed"],
    );
    // 255 bytes is a name.
    let longest = format!("{}.csv", "b".repeat(251));
    succeeds(
        &d,
        &[
            "data",
            "--dataset",
            "two_moons",
            "--n",
            "3",
            "--out",
            &longest,
        ],
    );
    assert!(d.join(&longest).is_file());
}

#[test]
fn count_flags_of_every_command_share_their_range() {
    let d = dir("counts");
    points_into(&d, "s.csv");
    let threads = "must be between 1 and 256";
    for value in ["0", "257", "18446744073709551615", "-1"] {
        refused(
            &d,
            &["study", "identity", "--quick", "--threads", value],
            &[
                &format!("invalid value '{value}' for '--threads <THREADS>'"),
                threads,
            ],
        );
    }
    let n = "must be between 2 and 268435456 (2^28)";
    for value in ["1", "268435457", "99999999999999999999"] {
        refused(
            &d,
            &[
                "data",
                "--dataset",
                "two_moons",
                "--n",
                value,
                "--out",
                "x.csv",
            ],
            &[&format!("invalid value '{value}' for '--n <N>'"), n],
        );
        refused(
            &d,
            &[
                "eval",
                "--samples",
                "s.csv",
                "--data",
                "s.csv",
                "--n",
                value,
            ],
            &[&format!("invalid value '{value}' for '--n <N>'"), n],
        );
    }
    refused(
        &d,
        &[
            "quality",
            "--checkpoint",
            "missing.safetensors",
            "--per-class",
            "0",
        ],
        &["'0' for '--per-class <PER_CLASS>': must be between 1 and 10000"],
    );
}

#[test]
fn csv_values_beyond_f64_are_out_of_range_not_infinite() {
    let d = dir("overflow");
    points_into(&d, "s.csv");
    std::fs::write(d.join("big.csv"), "1,2\n3,-1e400\n5,6\n").unwrap();
    std::fs::write(d.join("big_label.csv"), "1,2,0\n3,4,1e999\n5,6,1\n").unwrap();
    std::fs::write(d.join("inf.csv"), "1,2\n3,-inf\n5,6\n").unwrap();
    std::fs::write(d.join("nan.csv"), "1,2\n3,NaN\n5,6\n").unwrap();
    refused(
        &d,
        &["eval", "--samples", "big.csv", "--data", "s.csv"],
        &["big.csv: line 2, column 2: -1e400 is out of range (max 1.8e308 in magnitude)"],
    );
    refused(
        &d,
        &train_args(&["--dataset", "big.csv", "--out", "run"]),
        &["big.csv: line 2, column 2: -1e400 is out of range (max 1.8e308 in magnitude)"],
    );
    refused(
        &d,
        &train_args(&[
            "--dataset",
            "big_label.csv",
            "--label-column",
            "-1",
            "--out",
            "run",
        ]),
        &["big_label.csv: line 2, column 3: 1e999 is out of range (max 1.8e308 in magnitude)"],
    );
    // Written out, infinity and NaN stay non-finite.
    for (file, value) in [("inf.csv", "-inf"), ("nan.csv", "NaN")] {
        refused(
            &d,
            &["eval", "--samples", file, "--data", "s.csv"],
            &[&format!(
                "{file}: line 2, column 2: non-finite value {value}"
            )],
        );
    }
    let out = run(&d, &["eval", "--samples", "s.csv", "--data", "s.csv"]);
    assert!(out.status.success());
}

/// A run folder (`train --out`) gets the output checks every other output has, with their
/// messages: through a loop of links, or with a name over 255 bytes, it is refused before
/// anything is written (the OS's "Not a directory" or "File name too long" used to be the reason).
#[test]
fn a_run_folder_through_a_link_loop_or_too_long_a_name_is_refused() {
    let d = dir("run_folder_checks");
    std::os::unix::fs::symlink("b", d.join("a")).unwrap();
    std::os::unix::fs::symlink("a", d.join("b")).unwrap();
    refused(
        &d,
        &["train", "--out", "a", "--steps", "5"],
        &[
            "cannot create the run folder a",
            "too many levels of symbolic links",
        ],
    );
    let long = "r".repeat(300);
    refused(
        &d,
        &["train", "--out", &long, "--steps", "5"],
        &["300 bytes long", "at most 255 bytes"],
    );
}
