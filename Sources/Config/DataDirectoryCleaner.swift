import Primitives
import Foundation

/// `evnode unsafe-clean`'s work: everything inside the database folder (`db_path`) goes, as
/// ev-node's `unsafe-clean` removes its data directory's contents; the folder itself stays. Never
/// the configuration or keys: a `db_path` that is the home, or holds `config/` or the signer's
/// folder, is refused before anything is removed.
package enum DataDirectoryCleaner {
    /// The folders that must survive (the config folder and the signer's).
    package static func check(layout: HomeLayout, signerDirectory: String) throws(ConfigError) {
        let data = normalized(layout.dataDirectory)
        // The root is every path's ancestor; `data + "/"` would be "//" and match nothing.
        let dataPrefix = data == "/" ? "/" : data + "/"
        for protected in [layout.home, layout.configDirectory, signerDirectory].map(normalized) {
            if protected == data || protected.hasPrefix(dataPrefix) {
                throw .conflict("refusing to clean \(data): db_path holds \(protected) (configuration and keys are never removed); nothing removed")
            }
        }
    }

    /// Removes the entries of the database folder; returns their names (empty when it is empty
    /// or absent). Stops at the first entry that cannot be removed, naming it.
    package static func clean(layout: HomeLayout, signerDirectory: String) throws(ConfigError) -> [String] {
        try check(layout: layout, signerDirectory: signerDirectory)
        let data = layout.dataDirectory
        guard FileIO.isDirectory(data) else { return [] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: data).sorted()
        } catch {
            throw .file(path: data, reason: "cannot list: \(error.localizedDescription)")
        }
        var removed: [String] = []
        for name in names {
            do {
                try FileManager.default.removeItem(atPath: data + "/" + name)
            } catch {
                throw .file(path: data + "/" + name, reason: "cannot remove (removed before it: \(removed.isEmpty ? "nothing" : removed.joined(separator: ", "))): \(error.localizedDescription)")
            }
            removed.append(name)
        }
        return removed
    }

    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." && !part.isEmpty {
            if part == ".." { if !parts.isEmpty { parts.removeLast() } } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }
}
