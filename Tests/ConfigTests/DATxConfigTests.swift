import Testing
@testable import Config

private let signerA = "celestia1377k5an3f94v6wyaceu0cf4nq6gk2jtpc46g7h"
private let signerB = "celestia1hakc56ax66ypjcmwj8w6hyr2c4g8cfs3wesguc"

@Suite struct DATxConfigTests {
    func flags(_ pairs: [(String, String)]) -> [String: RawSetting] {
        var out: [String: RawSetting] = [:]
        for (k, v) in pairs { out[k] = RawSetting(value: v, source: "--\(Settings.byKey[k]!.flag)") }
        return out
    }

    @Test func defaultsLetTheDANodeEstimate() throws {
        let c = try ConfigLoader.resolve(home: "/h", file: [:], flags: [:])
        #expect(c.da.txConfig == DATxConfig())
        #expect(c.da.txConfig.json == "{}")
        #expect(c.da.maxGasPrice == 0.4)
        #expect(c.da.gasMultiplier == 1.3)
        #expect(c.da.signingAddresses.isEmpty && c.da.subscribe && c.maxPendingBlocks == 0)
    }

    @Test func submitOptionsJSONUsesCelestiaNodeFieldNames() throws {
        let tx = try DATxConfig(json: """
        {"gas_price": 0.002, "is_gas_price_set": true, "max_gas_price": 0.1, "gas": 120000, "tx_priority": 3,
         "key_name": "rollup", "signer_address": "\(signerA)", "fee_granter_address": "\(signerB)"}
        """)
        #expect(tx == DATxConfig(gasPrice: 0.002, maxGasPrice: 0.1, gas: 120_000, txPriority: 3, keyName: "rollup",
                                 signerAddress: signerA, feeGranterAddress: signerB))
        #expect(tx.json == "{\"fee_granter_address\":\"\(signerB)\",\"gas\":120000,\"gas_price\":0.002,"
            + "\"is_gas_price_set\":true,\"key_name\":\"rollup\",\"max_gas_price\":0.1,"
            + "\"signer_address\":\"\(signerA)\",\"tx_priority\":3}")
        // celestia-node's -1 (estimate) and is_gas_price_set=false both mean "no price".
        #expect(try DATxConfig(json: "{\"gas_price\": -1}").gasPrice == nil)
        #expect(try DATxConfig(json: "{\"gas_price\": 0.5, \"is_gas_price_set\": false}").gasPrice == nil)
    }

    @Test func badSubmitOptionsAreNamed() {
        #expect(throws: DATxConfig.Failure.self) { try DATxConfig(json: "{\"gasprice\": 1}") }
        #expect(throws: DATxConfig.Failure.self) { try DATxConfig(json: "[1]") }
        #expect(throws: DATxConfig.Failure.self) { try DATxConfig(json: "{\"gas_price\": \"high\"}") }
        #expect(throws: DATxConfig.Failure.self) { try DATxConfig(json: "{\"tx_priority\": 7}") }
        #expect(throws: DATxConfig.Failure.self) { try DATxConfig(json: "{\"signer_address\": \"cosmos1xyz\"}") }
        do {
            _ = try DATxConfig(json: "{\"gasprice\": 1}")
        } catch {
            #expect(error.description.contains("unknown field \"gasprice\""))
        }
    }

    @Test func flagsOverrideSubmitOptions() throws {
        let c = try ConfigLoader.resolve(home: "/h", file: [:], flags: flags([
            ("da.submit_options", "{\"gas_price\": 0.002, \"key_name\": \"a\"}"),
            ("da.gas_price", "0.003"), ("da.tx_priority", "high"), ("da.fee_granter", signerB),
            ("da.signing_addresses", "\(signerA), \(signerB)"), ("da.max_gas_price", "0.05"),
        ]))
        #expect(c.da.txConfig.gasPrice == 0.003)
        #expect(c.da.txConfig.keyName == "a")
        #expect(c.da.txConfig.txPriority == 3)
        #expect(c.da.txConfig.feeGranterAddress == signerB)
        #expect(c.da.signingAddresses == [signerA, signerB])
        #expect(c.da.maxGasPrice == 0.05)
    }

    @Test func badValuesAreOneLineErrors() {
        let cases: [[(String, String)]] = [
            [("da.gas_price", "-2")],
            [("da.gas_price", "cheap")],
            [("da.gas_multiplier", "0.5")],
            [("da.signing_addresses", "celestia1377k5an3f94v6wyaceu0cf4nq6gk2jtpc46g7x")],  // checksum
            [("da.tx_priority", "urgent")],
            [("da.gas_price", "0.5"), ("da.max_gas_price", "0.1")],
            [("da.tls_ca_file", "/nonexistent/ca.pem"), ("da.address", "https://127.0.0.1:26658")],
            [("da.tls_ca_file", "/etc/hostname"), ("da.address", "http://127.0.0.1:26658")],
            [("node.max_pending_headers_and_data", "-1")],
        ]
        for pairs in cases {
            #expect(throws: ConfigError.self, "\(pairs)") {
                try ConfigLoader.resolve(home: "/h", file: [:], flags: flags(pairs))
            }
        }
    }

    @Test func yamlKeysAndEvNodeFlagSpellings() throws {
        let file = try ConfigLoader.parseYAML("""
        node:
          max_pending_headers_and_data: 8
        da:
          gas_price: 0.004
          gas_multiplier: 1.5
          signing_addresses: [\(signerA), \(signerB)]
          subscribe: false
        """, path: "config.yaml")
        let c = try ConfigLoader.resolve(home: "/h", file: file, flags: [:])
        #expect(c.maxPendingBlocks == 8 && c.da.txConfig.gasPrice == 0.004 && c.da.gasMultiplier == 1.5)
        #expect(c.da.signingAddresses == [signerA, signerB] && !c.da.subscribe)
        let args = try SettingFlags.parse(["--evnode.da.submit_options={}", "--rollkit.node.max_pending_headers_and_data=4",
                                            "--da.gas-price", "-1"])
        #expect(args["da.submit_options"]?.value == "{}" && args["node.max_pending_headers_and_data"]?.value == "4")
        #expect(args["da.gas_price"]?.value == "-1")
        // The template `evnode init` writes parses back to the defaults.
        let template = try ConfigLoader.parseYAML(ConfigTemplate.yaml(values: ["node.aggregator": "true"]), path: "t")
        let t = try ConfigLoader.resolve(home: "/h", file: template, flags: [:])
        #expect(t.da.txConfig == DATxConfig() && t.da.gasMultiplier == 1.3)
    }
}
