use algorithms::plot::{line_chart, Series};

#[test]
fn line_chart_writes_a_png_with_curves() {
    let path = std::env::temp_dir().join(format!("rlhf-plot-{}.png", std::process::id()));
    let reward = Series { name: "reward", points: (0..50).map(|i| (i as f64, (i as f64 / 10.0).sin())).collect() };
    let kl = Series { name: "kl", points: vec![(0.0, 0.0), (25.0, f64::NAN), (49.0, 0.8)] };
    line_chart(&path, "PPO on arith", "step", "value", &[reward, kl]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height as written.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 800);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 500);
    assert!(bytes.len() > 5_000, "a chart with text and two curves is more than a blank image");

    let bad = std::path::Path::new("/nonexistent-dir/chart.png");
    let err = line_chart(bad, "t", "x", "y", &[]).unwrap_err().to_string();
    assert!(err.contains("/nonexistent-dir/chart.png"), "{err}");
}
