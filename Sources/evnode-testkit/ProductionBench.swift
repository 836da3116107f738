import Config
import Foundation
import ProcessKit

/// `evnode-testkit bench-production [--seconds S] [--tx-rate R] [--block-times 10,5] [--remote-signer] [--home DIR] [--keep]`:
/// only bench-all's production figures — missed slots and block intervals under the HTTP tx load —
/// on a fresh aggregator home with a local DA, so that a change to the production path can be
/// measured in a minute instead of a whole `make bench`. (In `make bench` the aggregator also has
/// the recovered 100,000-block store behind it: `--home` runs on such an existing home.)
func benchProduction(_ args: [String]) {
    var plan = BenchPlan.full()
    plan.productionSeconds = Double(intOption("--seconds", in: args, default: 20))
    plan.txRate = intOption("--tx-rate", in: args, default: plan.txRate)
    let blockTimes = (option("--block-times", in: args) ?? "10,5").split(separator: ",").map { part -> Int in
        guard let ms = Int(part), ms > 0 else { fail("--block-times takes milliseconds, e.g. 10,5 (got \(part))") }
        return ms
    }
    let setup = BenchSetup(args, workName: "evnode-production")
    let driver = BenchDriver(plan: plan, work: setup.work, evnode: setup.evnode, testkit: setup.testkit)
    let existingHome = option("--home", in: args)
    let home = existingHome ?? setup.work + "/aggregator"
    if existingHome == nil {
        do {
            _ = try HomeInitializer.initialize(home: home, chainID: driver.chainID, aggregator: true,
                                               startTimeNanoseconds: wallNanoseconds() - 60_000_000_000)
        } catch {
            fail("init \(home): \(error)")
        }
    }
    driver.startLocalDA()
    defer { driver.localDA?.terminate() }
    var results: [String: ProductionResult] = [:]
    for ms in blockTimes {
        results["\(ms)ms"] = driver.produce(home: home, blockTimeMilliseconds: ms)
    }
    // Then the same run through `evnode signer serve` (bench-all's remote-signer row).
    if args.contains("--remote-signer") {
        driver.produceThroughRemoteSigner(home: home)
        results["\(plan.blockTimeMilliseconds)ms-remote-signer"] = driver.results.productionRemoteSigner
    }
    FileHandleOut.line(prettyJSON(results))
    setup.finish()
}
