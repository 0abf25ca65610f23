//! `labtui bench engine --profile` on the synthetic model: a prefill and a decode step broken
//! into their operations, each with its share, the products with the bytes and FLOPs they moved,
//! the lines and the rest adding up to the whole pass.

mod common;

use common::OutputWithin;

/// The rows of the table under `heading`: each row's cells.
fn rows<'a>(out: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    out.lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect()
}

#[test]
fn the_profile_names_each_operation_and_its_lines_add_up_to_the_pass() {
    let o = common::labtui_cmd()
        .args([
            "bench",
            "engine",
            "--model",
            "synthetic",
            "--no-reference",
            "--pp",
            "64",
            "--tg",
            "8",
            "--repeats",
            "1",
            "--profile",
        ])
        .output_bounded();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    for heading in [
        "### Where a prefill of 64 tokens goes",
        "### Where a decode step goes",
    ] {
        let table = rows(&out, heading);
        let names: Vec<&str> = table.iter().map(|r| r[0]).collect();
        for want in [
            "q, k and v products",
            "o product",
            "gate and up products",
            "down product",
            "attention",
            "norms",
            "RoPE and head layout",
            "KV cache writes",
            "activation",
            "head",
            "rest",
            "the whole pass",
        ] {
            assert!(names.contains(&want), "{heading}: {want} missing:\n{out}");
        }
        let pct = |s: &str| s.trim_end_matches('%').parse::<f64>().unwrap();
        let shares: f64 = table
            .iter()
            .filter(|r| r[0] != "the whole pass")
            .map(|r| pct(r[3]))
            .sum();
        assert!(
            (shares - 100.0).abs() < 2.0,
            "{heading}: shares add to {shares}"
        );
        let products = table.iter().find(|r| r[0] == "down product").unwrap();
        let gb_s: f64 = products[4].parse().unwrap();
        assert!(gb_s > 0.0, "{products:?}");
    }
    // A decode step runs each layer's products once: two layers, three of q, k and v each.
    let decode = rows(&out, "### Where a decode step goes");
    let qkv = decode
        .iter()
        .find(|r| r[0] == "q, k and v products")
        .unwrap();
    assert_eq!(qkv[1], "6", "{qkv:?}");
}
