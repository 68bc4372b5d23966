//! The inline SVG chart of a task's recent runtimes.

use maud::{html, Markup};

use super::layout::format_seconds;
use crate::alert::AlertSettings;
use crate::store::dashboard::RuntimePoint;
use crate::store::RuntimeStats;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 16.0;

/// Returns the mean plus the settings' standard deviations of `stats`: the
/// runtime above which a run counts as an outlier.
pub(super) fn outlier_threshold(stats: &RuntimeStats, settings: &AlertSettings) -> Option<f64> {
    Some(stats.mean? + settings.deviations * stats.deviation?)
}

/// Returns a bar chart of `points`, oldest on the left, with the mean and
/// the outlier threshold of `stats` as horizontal lines. Each bar links to
/// its execution, from a page whose dashboard root is `base`.
pub(super) fn runtime_chart(
    base: &str,
    points: &[RuntimePoint],
    stats: &RuntimeStats,
    settings: &AlertSettings,
) -> Markup {
    let threshold = outlier_threshold(stats, settings);
    let top_value = points
        .iter()
        .map(|point| point.runtime_seconds)
        .chain(stats.mean)
        .chain(threshold)
        .fold(0.0_f64, f64::max)
        .max(0.001)
        * 1.1;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y_of = |seconds: f64| TOP + plot_height * (1.0 - (seconds / top_value).clamp(0.0, 1.0));
    let slot = plot_width / points.len().max(1) as f64;
    let bar_width = (slot * 0.8).clamp(1.0, 24.0);
    let label = format!(
        "Runtimes of the latest {} finished runs, oldest first",
        points.len()
    );

    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            line.axis x1=(LEFT) y1=(TOP + plot_height) x2=(WIDTH - RIGHT) y2=(TOP + plot_height) {}
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_height) {}
            text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (format_seconds(top_value)) }
            text x=(LEFT - 4.0) y=(TOP + plot_height) text-anchor="end" { "0 s" }
            @for (index, point) in points.iter().enumerate() {
                @let y = y_of(point.runtime_seconds);
                @let x = LEFT + slot * index as f64 + (slot - bar_width) / 2.0;
                a href=(format!("{base}executions/{}", point.execution_id)) {
                    rect class=(format!("bar-{}", point.status))
                        x=(round(x)) y=(round(y)) width=(round(bar_width))
                        height=(round((TOP + plot_height - y).max(0.5))) {
                        title {
                            "execution " (point.execution_id) ": "
                            (format_seconds(point.runtime_seconds)) ", " (point.status.as_str())
                        }
                    }
                }
            }
            @if let Some(mean) = stats.mean {
                line.mean x1=(LEFT) x2=(WIDTH - RIGHT) y1=(round(y_of(mean))) y2=(round(y_of(mean))) {}
            }
            @if let Some(threshold) = threshold {
                line.threshold x1=(LEFT) x2=(WIDTH - RIGHT)
                    y1=(round(y_of(threshold))) y2=(round(y_of(threshold))) {}
            }
        }
    }
}

/// Rounds a coordinate to a tenth, to keep the markup short.
fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::Status;

    #[test]
    fn chart_draws_bars_and_lines() {
        let points: Vec<RuntimePoint> = [1.0, 2.0, 3.0]
            .into_iter()
            .enumerate()
            .map(|(index, seconds)| RuntimePoint {
                execution_id: index as i64 + 1,
                status: Status::Success,
                started: None,
                runtime_seconds: seconds,
            })
            .collect();
        let stats = RuntimeStats::from_runtimes(vec![1.0, 2.0, 3.0], None);
        let svg = runtime_chart("../", &points, &stats, &AlertSettings::default()).into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("class=\"mean\""), "{svg}");
        assert!(svg.contains("class=\"threshold\""), "{svg}");
        assert!(svg.contains("href=\"../executions/3\""), "{svg}");
    }

    #[test]
    fn threshold_is_mean_plus_two_deviations() {
        let stats = RuntimeStats::from_runtimes(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], None);
        let threshold = outlier_threshold(&stats, &AlertSettings::default()).expect("a threshold");
        let expected = 5.0 + 2.0 * (32.0f64 / 7.0).sqrt();
        assert!((threshold - expected).abs() < 1e-9, "{threshold}");
    }
}
