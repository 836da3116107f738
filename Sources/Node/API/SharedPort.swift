import Foundation
import GRPCNIOTransportHTTP2
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

// One port for the JSON API, Connect and gRPC, as ev-node serves them: Hummingbird accepts every
// connection; the first bytes tell an HTTP/2 client with prior knowledge (gRPC, which always
// opens with the 24-byte connection preface) from HTTP/1.1. HTTP/1.1 connections stay with
// Hummingbird; HTTP/2 ones get grpc-swift's server pipeline and are handed to its transport
// through `GRPCConnectionInbox`.

/// Hummingbird's child channel for the shared port: sniffs, then serves HTTP/1.1 itself or
/// hands the connection to gRPC.
struct SharedPortChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        /// Completes once the first bytes chose the protocol and its pipeline is in place.
        let chosen: EventLoopFuture<Chosen>
    }

    enum Chosen: Sendable {
        case http1(HTTP1Channel.Value)
        case grpc
    }

    let http1: HTTP1Channel
    let inbox: GRPCConnectionInbox

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let promise = channel.eventLoop.makePromise(of: Chosen.self)
            let http1 = self.http1
            let inbox = self.inbox
            let sniffer = PrefaceSniffer(promise: promise) { kind, channel in
                switch kind {
                case .http1: http1.setup(channel: channel, logger: logger).map { Chosen.http1($0) }
                case .http2: inbox.adopt(channel).map { Chosen.grpc }
                }
            }
            try channel.pipeline.syncOperations.addHandler(sniffer)
            return Value(channel: channel, chosen: promise.futureResult)
        }
    }

    func handle(value: Value, logger: Logger) async {
        switch try? await value.chosen.get() {
        case .http1(let connection)?:
            await http1.handle(value: connection, logger: logger)
        case .grpc?:
            // grpc-swift serves it; Hummingbird counts the connection until it closes.
            try? await value.channel.closeFuture.get()
        case nil:
            try? await value.channel.close()
        }
    }
}

/// Reads until the first bytes decide between HTTP/2 prior knowledge and HTTP/1.1, has the
/// chosen protocol's handlers added behind it, replays what it read and leaves the pipeline.
/// A stranger makes it hold at most the preface's 24 bytes, for at most `timeout`.
final class PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Kind: Sendable { case http1, http2 }

    /// RFC 9113 §3.4: every HTTP/2 connection with prior knowledge starts with these bytes.
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// A connection that says too little to tell within this is closed.
    static let timeout: TimeAmount = .seconds(10)

    private let promise: EventLoopPromise<SharedPortChannel.Chosen>
    private let configure: (Kind, any Channel) -> EventLoopFuture<SharedPortChannel.Chosen>
    private var seen = ByteBuffer()
    private var decided = false
    private var deadline: Scheduled<Void>?

    init(promise: EventLoopPromise<SharedPortChannel.Chosen>,
         configure: @escaping (Kind, any Channel) -> EventLoopFuture<SharedPortChannel.Chosen>) {
        self.promise = promise
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: Self.timeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        seen.writeBuffer(&bytes)
        guard !decided else { return }
        let prefix = seen.readableBytesView.prefix(Self.preface.count)
        let kind: Kind
        if !prefix.elementsEqual(Self.preface.prefix(prefix.count)) {
            kind = .http1
        } else if prefix.count == Self.preface.count {
            kind = .http2
        } else {
            return  // so far a prefix of the preface: wait for more
        }
        decided = true
        deadline?.cancel()
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let promise = self.promise
        configure(kind, context.channel).hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let chosen):
                let context = loopContext.value
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                promise.succeed(chosen)
            case .failure(let error):
                loopContext.value.close(promise: nil)
                promise.fail(error)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if !decided {
            decided = true
            promise.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !decided { context.close(promise: nil) } else { context.fireErrorCaught(error) }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if seen.readableBytes > 0 {
            let replay = seen
            seen = ByteBuffer()
            context.fireChannelRead(wrapInboundOut(replay))
            context.fireChannelReadComplete()
        }
        context.leavePipeline(removalToken: removalToken)
    }
}

/// Hands HTTP/2 connections accepted by Hummingbird to grpc-swift's transport. The transport
/// asks its `ListenerFactory` for a listening channel that yields configured connections; this
/// one yields the connections `adopt` configures, through a channel that listens on nothing (a
/// pipe nobody writes to) and only carries them into the transport.
final class GRPCConnectionInbox: HTTP2ServerTransport.ListenerFactory, Sendable {
    private struct Ready: Sendable {
        let channel: any Channel
        let relay: NIOLoopBound<ChannelHandlerContext>
        let configurator: HTTP2ServerTransport.ConnectionConfigurator
    }

    let eventLoopGroup: any EventLoopGroup
    private let ready = Mutex<Ready?>(nil)
    private let readiness = AsyncStream<Void>.makeStream()

    init(eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.eventLoopGroup = eventLoopGroup
    }

    /// Waits until the gRPC transport listens (`makeListeningChannel` ran) or gave up.
    func waitUntilListening() async -> Bool {
        for await _ in readiness.stream { break }
        return ready.withLock { $0 != nil }
    }

    /// Ends `waitUntilListening` when the gRPC server failed before it listened.
    func giveUp() { readiness.continuation.finish() }

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw IOError(errnoCode: errno, reason: "pipe() for the gRPC connection inbox")
        }
        let channel = try await NIOPipeBootstrap(group: eventLoopGroup)
            .takingOwnershipOfDescriptors(input: fds[0], output: fds[1]).get()
        // The quiescing handler: on graceful shutdown it closes this channel, which ends the
        // transport's accept loop. (Hummingbird quiesces the connections themselves.)
        try await channel.eventLoop.flatSubmit { listenerConfigurator.configure(channel: channel) }.get()
        let (asyncChannel, relay) = try await channel.eventLoop.submit {
            let relay = InboxRelay()
            try channel.pipeline.syncOperations.addHandler(relay)
            let asyncChannel = try NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never>(
                wrappingChannelSynchronously: channel)
            return (asyncChannel, NIOLoopBound(relay.context!, eventLoop: channel.eventLoop))
        }.get()
        ready.withLock { $0 = Ready(channel: channel, relay: relay, configurator: connectionConfigurator) }
        readiness.continuation.yield()
        readiness.continuation.finish()
        return asyncChannel
    }

    /// Gives `channel` grpc-swift's HTTP/2 server pipeline and passes it to the transport.
    func adopt(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard let ready = ready.withLock({ $0 }), ready.channel.isActive else {
            return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        return ready.configurator.configure(channel: channel, tls: .none).flatMap { connection in
            ready.channel.eventLoop.submit {
                guard ready.channel.isActive else { throw ChannelError.ioOnClosedChannel }
                // NIOAsyncChannel hands reads to its consumer on read-complete.
                ready.relay.value.fireChannelRead(NIOAny(connection))
                ready.relay.value.fireChannelReadComplete()
            }.hop(to: channel.eventLoop)
        }
    }
}

/// Sits in the inbox channel's pipeline so that connections can be fired from its context
/// towards the transport's reader.
private final class InboxRelay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
}
