//! Helpers shared by the integration tests.

use std::fs;
use std::path::Path;

/// Copies the tree `from` to `to`, files writable, skipping files for which `skip` is true
/// (the corpora's files are read-only in the repository).
pub fn copy_dir(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst, skip);
        } else if !skip(&e.path()) {
            fs::copy(e.path(), &dst).unwrap();
            let mut perm = fs::metadata(&dst).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            fs::set_permissions(&dst, perm).unwrap();
        }
    }
}
