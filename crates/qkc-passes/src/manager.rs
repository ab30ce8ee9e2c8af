//! The pass manager: runs the pipeline, verifies after each pass (in tests and debug builds, or
//! when asked), times passes, and collects IR dumps with MLIR's header convention.

use std::time::{Duration, Instant};

use qkc_ir::Graph;

use crate::passes;
use crate::{Changed, Pass, PassContext, PassError, Remark};

/// Dump and check options (the CLI's `--print-after`, `--print-after-all`, `--print-changed`,
/// `--time-passes`, `--verify-each`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Dump after these passes.
    pub print_after: Vec<String>,
    /// Dump after every pass.
    pub print_after_all: bool,
    /// Only dump when the pass changed the graph.
    pub print_changed: bool,
    /// Verify after every pass.
    pub verify_each: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            print_after: Vec::new(),
            print_after_all: false,
            print_changed: false,
            verify_each: cfg!(debug_assertions),
        }
    }
}

/// What a pipeline run produced besides the rewritten graph.
#[derive(Debug, Default)]
pub struct Report {
    /// `(pass name, header + graph text)` for each requested dump, in order.
    pub dumps: Vec<(&'static str, String)>,
    /// `(pass name, wall time, changed)` per pass.
    pub timings: Vec<(&'static str, Duration, bool)>,
    /// Why rewrites did not fire.
    pub remarks: Vec<Remark>,
}

impl Report {
    /// A `--time-passes` table.
    pub fn timing_table(&self) -> String {
        let total: Duration = self.timings.iter().map(|t| t.1).sum();
        let mut s =
            String::from("===-------------------------------------------------------------===\n");
        s.push_str("                      qkc pass execution timing report\n");
        s.push_str("===-------------------------------------------------------------===\n");
        s.push_str(&format!(
            "  Total: {:.3} ms\n\n    time (ms)   changed  pass\n",
            total.as_secs_f64() * 1e3
        ));
        for (name, t, changed) in &self.timings {
            s.push_str(&format!(
                "  {:>11.3}   {:<7}  {name}\n",
                t.as_secs_f64() * 1e3,
                if *changed { "yes" } else { "no" }
            ));
        }
        s
    }
}

/// An ordered list of passes.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    opts: Options,
}

/// The pipeline, in order. Each line is one small named pass.
pub fn default_pipeline(opts: Options) -> PassManager {
    PassManager {
        passes: vec![
            Box::new(passes::canonicalize::Canonicalize),
            Box::new(passes::cse::Cse),
            Box::new(passes::fuse_dequant::FuseDequant),
            Box::new(passes::fuse_outliers::FuseOutliers),
            Box::new(passes::fuse_act_quant::FuseActQuant),
            Box::new(passes::fuse_rotation::FuseRotation),
            Box::new(passes::fuse_epilogue::FuseEpilogue),
            Box::new(passes::fuse_rope::FuseRope),
            Box::new(passes::dce::Dce),
        ],
        opts,
    }
}

/// Escape hatch for tests: a single named pass.
pub fn pass_by_name(name: &str) -> Option<Box<dyn Pass>> {
    default_pipeline(Options::default())
        .passes
        .into_iter()
        .find(|p| p.name() == name)
}

impl PassManager {
    /// Names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// The passes with their descriptions.
    pub fn describe(&self) -> Vec<(&'static str, &'static str)> {
        self.passes
            .iter()
            .map(|p| (p.name(), p.description()))
            .collect()
    }

    /// Run every pass on `g`.
    pub fn run(&self, g: &mut Graph) -> Result<Report, PassError> {
        let names = self.names();
        for n in &self.opts.print_after {
            if !names.contains(&n.as_str()) {
                return Err(PassError::UnknownPass(n.clone(), names.join(", ")));
            }
        }
        qkc_ir::verify::verify(g).map_err(|d| PassError::InvalidInput(join(&d)))?;
        let mut report = Report::default();
        let mut cx = PassContext::default();
        for p in &self.passes {
            let t0 = Instant::now();
            let changed = p.run(g, &mut cx) == Changed::Yes;
            report.timings.push((p.name(), t0.elapsed(), changed));
            if self.opts.verify_each {
                qkc_ir::verify::verify(g).map_err(|d| PassError::BrokeGraph {
                    pass: p.name(),
                    diags: join(&d),
                })?;
            }
            let wanted =
                self.opts.print_after_all || self.opts.print_after.iter().any(|n| n == p.name());
            if wanted && (changed || !self.opts.print_changed) {
                report.dumps.push((
                    p.name(),
                    format!("// -----// IR Dump After {} //----- //\n{g}", p.name()),
                ));
            }
        }
        report.remarks = cx.remarks;
        Ok(report)
    }
}

fn join(d: &[qkc_ir::Diag]) -> String {
    d.iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}
