import Testing
@testable import Config

/// The keys code names settings by and the settings table are one list: a key without a row (or a
/// row without a key) is caught here, a misspelt key by the compiler.
@Suite struct SettingKeyTests {
    @Test func everyKeyHasExactlyOneRowAndEveryRowAKey() {
        #expect(SettingKey.all.map(\.name) == Settings.all.map(\.key))
        #expect(Set(SettingKey.all).count == SettingKey.all.count)
        for key in SettingKey.all { #expect(Settings[key].id == key) }
    }

    @Test func aFailureNamesTheKeyAndItsFlag() {
        let reader = ValueReader(values: ["da.block_time": RawSetting(value: "soon", source: "--evnode.da.block_time")])
        #expect(throws: ConfigError.self) { try reader.duration(.daBlockTime) }
        do {
            _ = try reader.duration(.daBlockTime)
        } catch {
            #expect(error.description.contains("da.block_time (--evnode.da.block_time)"), "\(error.description)")
        }
    }
}
