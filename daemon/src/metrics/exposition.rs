//! Prometheus' text exposition format (0.0.4): each family once, with its
//! HELP and TYPE lines, then its samples; label values escaped.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::histogram::HistogramValues;

/// A family's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Goes up and down.
    Gauge,
    /// Only goes up (restarts at zero with the process).
    Counter,
    /// Buckets, sum and count.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text of one scrape.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    /// Families already headed: a family's samples must be together.
    headed: BTreeSet<String>,
    current: String,
}

impl Exposition {
    /// Starts family `name` (its samples follow). Calling it again for the
    /// family being written does nothing.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        if self.current == name {
            return self;
        }
        debug_assert!(
            !self.headed.contains(name),
            "family {name} written in two places"
        );
        self.headed.insert(name.to_owned());
        self.current = name.to_owned();
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let name = self.current.clone();
        self.line(&name, labels, value);
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// A histogram family's samples for one label set.
    pub fn histogram(&mut self, labels: &[(&str, &str)], values: &HistogramValues) {
        let name = self.current.clone();
        for &(bound, count) in &values.cumulative {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                format_value(bound)
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.line(&format!("{name}_bucket"), &with_le, count as f64);
        }
        self.line(&format!("{name}_sum"), labels, values.sum_seconds);
        self.line(&format!("{name}_count"), labels, values.count as f64);
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.text.push_str("\\\\"),
                        '"' => self.text.push_str("\\\""),
                        '\n' => self.text.push_str("\\n"),
                        c => self.text.push(c),
                    }
                }
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }

    /// The finished text.
    pub fn into_text(self) -> String {
        self.text
    }
}

/// A value as Prometheus reads it: integers without a fraction, NaN and the
/// infinities by name.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::Histogram;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::default();
        e.family("rocketmq_producer_tps", Kind::Gauge, "TopicPutNums")
            .sample(&[("cluster", "C"), ("topic", "a\"b\\c\nd")], 2.5)
            .sample(&[("cluster", "C"), ("topic", "t")], 3.0);
        e.single("process_open_fds", Kind::Gauge, "Open descriptors.", 12.0);
        let text = e.into_text();
        assert_eq!(
            text,
            "# HELP rocketmq_producer_tps TopicPutNums\n\
             # TYPE rocketmq_producer_tps gauge\n\
             rocketmq_producer_tps{cluster=\"C\",topic=\"a\\\"b\\\\c\\nd\"} 2.5\n\
             rocketmq_producer_tps{cluster=\"C\",topic=\"t\"} 3\n\
             # HELP process_open_fds Open descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 12\n"
        );
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let h = Histogram::default();
        h.record(std::time::Duration::from_millis(2));
        let mut e = Exposition::default();
        e.family("mq_flush_seconds", Kind::Histogram, "Flushes.")
            .histogram(&[], &h.values());
        let text = e.into_text();
        assert!(
            text.contains("mq_flush_seconds_bucket{le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("mq_flush_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mq_flush_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("mq_flush_seconds_sum 0.002\n"), "{text}");
        assert!(text.ends_with("mq_flush_seconds_count 1\n"), "{text}");
    }
}
