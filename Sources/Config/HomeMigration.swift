import Primitives
import Foundation

/// `evnode migrate-home`: converts an earlier evnode's home (`config/config.yaml`) to ev-node's
/// layout in place. Order, so that every stop leaves a home that starts as it did:
/// 1. everything is read and validated (the old config must load; nothing written yet);
/// 2. the old files are copied into `config/pre-migrate-<n>/` (the backup, kept);
/// 3. the new `evnode.yaml` is written beside the old one under a temporary name and synced;
/// 4. it is renamed to `evnode.yaml` (the commit) and `config.yaml` removed at once.
/// A failure in 1–3 leaves the old home as it was (plus the backup); a stop between the two
/// syscalls of 4 leaves both files, which `start` refuses and a second `migrate-home` finishes.
package enum HomeMigration {
    package struct Result: Sendable {
        package let configFile: String
        package let backupDirectory: String
        /// Keys of the old file written under ev-node's name.
        package let renamedKeys: [String]
    }

    package static let stagingName = "evnode.yaml.migrating"

    package static func migrateConfig(layout: HomeLayout) throws(ConfigError) -> Result {
        let current = FileIO.exists(layout.configFile), legacy = FileIO.exists(layout.legacyConfigFile)
        let backupPrefix = layout.configDirectory + "/pre-migrate-"
        if current && legacy {
            // A migration stopped between its commit and the removal of the old file: finish it
            // when the old file is in a backup, byte for byte.
            if let backup = existingBackups(layout).first(where: { sameBytes($0 + "/config.yaml", layout.legacyConfigFile) }) {
                try remove(layout.legacyConfigFile)
                return Result(configFile: layout.configFile, backupDirectory: backup, renamedKeys: [])
            }
            throw .file(path: layout.legacyConfigFile, reason: "both it and \(layout.configFile) exist and no backup holds it; keep one by hand")
        }
        guard legacy else {
            throw .missing(current ? "\(layout.configFile) exists: \(layout.home) is in ev-node's layout already; nothing to migrate"
                                   : "\(layout.legacyConfigFile) is missing: \(layout.home) is not an earlier evnode's home")
        }
        // 1. Read and validate.
        let file = try ConfigLoader.readFile(at: layout.legacyConfigFile, legacy: true)
        _ = try ConfigLoader.load(home: layout.home, file: file.values, environment: [:], flags: [:])
        let oldText: [UInt8]
        do {
            oldText = try FileIO.readBytes(layout.legacyConfigFile, limit: 1 << 20)
        } catch {
            throw .file(path: error.path, reason: error.description)
        }
        let legacyKeys = Set(try rawKeys(layout.legacyConfigFile))
        var values: [String: String] = [:]
        for (key, raw) in file.values { values[key] = raw.value }
        let yaml = ConfigTemplate.yaml(values: values)

        // 2. Backup.
        var n = 1
        while FileIO.exists(backupPrefix + "\(n)") { n += 1 }
        let backup = backupPrefix + "\(n)"
        do {
            try FileIO.makeDirectories(backup, mode: 0o700)
            try FileIO.writeAtomically(backup + "/config.yaml", oldText, mode: 0o600, exclusive: true)
        } catch {
            throw .file(path: error.path, reason: "backup failed, nothing changed: \(error.description)")
        }
        // 3. The new file under a temporary name.
        let staging = layout.configDirectory + "/" + stagingName
        do {
            try FileIO.writeAtomically(staging, yaml, mode: 0o600)
        } catch {
            throw .file(path: error.path, reason: "cannot write the new configuration, nothing changed (backup in \(backup)): \(error.description)")
        }
        // 4. Commit, then the old file goes (its copy is in the backup).
        if rename(staging, layout.configFile) != 0 {
            let reason = FileIO.errnoText()
            unlink(staging)
            throw .file(path: layout.configFile, reason: "cannot put the new configuration in place, nothing changed: \(reason)")
        }
        try remove(layout.legacyConfigFile)
        let renamed = Settings.legacyKeys.keys.filter { legacyKeys.contains($0) }.sorted()
        return Result(configFile: layout.configFile, backupDirectory: backup, renamedKeys: renamed)
    }

    static func existingBackups(_ layout: HomeLayout) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: layout.configDirectory)) ?? []
        return names.filter { $0.hasPrefix("pre-migrate-") }.sorted().map { layout.configDirectory + "/" + $0 }
    }

    static func sameBytes(_ a: String, _ b: String) -> Bool {
        guard let x = try? FileIO.readBytes(a, limit: 1 << 20), let y = try? FileIO.readBytes(b, limit: 1 << 20) else { return false }
        return x == y
    }

    static func remove(_ path: String) throws(ConfigError) {
        if unlink(path) != 0 {
            throw .file(path: path, reason: "the migration is committed but this old file could not be removed (\(FileIO.errnoText())); remove it by hand")
        }
    }

    /// The dotted keys of a config file as written (to report the renamed ones).
    static func rawKeys(_ path: String) throws(ConfigError) -> [String] {
        let text: String
        do {
            text = try FileIO.readString(path, limit: 1 << 20)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        var out: [String] = []
        var group = ""
        for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            if line.first != " " { group = name } else { out.append(group + "." + name) }
        }
        return out
    }
}
