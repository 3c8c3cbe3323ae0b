//! The check of the WAL as a plan leaves it, made on a scratch copy before anything changes.

use super::*;

/// Checks what the WAL would look like after `plan`, without touching it: the changed files
/// are written into a scratch copy (untouched files are symlinked), which is then checked.
/// This is how the plan tells, before anything changes, which samples will point at series
/// whose series record is lost.
pub fn predict(plan: &Plan, opts: &RepairOptions) -> io::Result<Report> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch = std::env::temp_dir().join(format!("walfix-plan-{}-{nanos}", std::process::id()));
    let result = predict_in(plan, opts, &scratch);
    let _ = fs::remove_dir_all(&scratch);
    result
}

pub(super) fn predict_in(plan: &Plan, opts: &RepairOptions, scratch: &Path) -> io::Result<Report> {
    let root = &plan.data_root;
    let map = |p: &Path| scratch.join(rel(root, p));
    let layout = discover(&plan.before.root, opts.flavor)?;
    let mut dirs: Vec<&Log> = Vec::new();
    for log in &layout.logs {
        dirs.push(log);
        if let Some(ck) = &log.checkpoint {
            dirs.push(&ck.log);
        }
    }
    // Mirror every segment (and the .repair files) as a symlink to the original.
    for log in &dirs {
        let dir = if log.single_file {
            log.path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            log.path.clone()
        };
        fs::create_dir_all(map(&dir))?;
        let mut files: Vec<PathBuf> = log.segments.iter().map(|s| s.path.clone()).collect();
        files.extend(log.leftovers.iter().filter_map(|l| match l {
            Leftover::RepairFile(p) => Some(p.clone()),
            _ => None,
        }));
        for f in files {
            let dst = map(&f);
            if !dst.exists() {
                std::os::unix::fs::symlink(fs::canonicalize(&f)?, &dst)?;
            }
        }
    }
    for a in &plan.actions {
        let dst = map(a.path());
        if let Action::RenameSegment { from, .. } = a {
            fs::rename(map(from), &dst)?;
            continue;
        }
        if let Action::CreateEmptyCheckpoint { .. } = a {
            fs::create_dir_all(&dst)?;
            fs::write(dst.join(crate::layout::segment_name(0)), b"")?;
            continue;
        }
        match new_content(a, opts, &|p| map(p))? {
            Some(bytes) => {
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                let _ = fs::remove_file(&dst);
                fs::write(&dst, bytes)?;
            }
            None => {
                let _ = fs::remove_file(&dst);
                let _ = fs::remove_dir_all(&dst);
            }
        }
        if let Action::RecoverRepairFile { repair_path, .. } = a {
            let _ = fs::remove_file(map(repair_path));
        }
    }
    let sand = discover(&map(&plan.before.root), opts.flavor)?;
    let check_opts = CheckOptions {
        flavor: opts.flavor,
        ..Default::default()
    };
    let mut report = check_layout(&sand, &check_opts);
    // Name the real files, not their scratch copies.
    let unmap = |p: &Path| match p.strip_prefix(scratch) {
        Ok(r) => root.join(r),
        Err(_) => p.to_path_buf(),
    };
    report.root = plan.before.root.clone();
    for f in &mut report.findings {
        f.file = unmap(&f.file);
    }
    for l in &mut report.logs {
        l.path = unmap(&l.path);
    }
    let scratch_s = scratch.to_string_lossy().into_owned();
    let root_s = root.to_string_lossy().into_owned();
    report
        .prometheus
        .map_paths(&unmap, &|t| t.replace(&scratch_s, &root_s));
    report.prometheus_outcome = report.prometheus.to_string();
    Ok(report)
}
