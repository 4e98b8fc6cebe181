import MQTT
import NIOCore
import NIOPosix

/// The `--sink` "broker": answers CONNECT with CONNACK, SUBSCRIBE with SUBACK, acknowledges QoS 1/2 and
/// discards every PUBLISH, so a run against it shows the generator's own ceiling. With `--sink-feed` it also
/// streams QoS 0 PUBLISH packets to every subscriber as fast as the subscriber reads (the receive ceiling).
final class SinkHandler: ChannelInboundHandler, HotPacketSink {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings: Sendable {
        var feed: Bool
        var feedSize: Int
        var batch: Int
    }

    private let settings: Settings
    private let stats: LoopStats
    private var context: ChannelHandlerContext?
    private var decoder = MQTTDecoder()
    private var version: ProtocolVersion = .v3_1_1
    private var cumulation: ByteBuffer?
    private var pendingOut = ByteBuffer()
    private var feedBatch: ByteBuffer?
    private var feedScheduled = false
    private var closed = false

    init(settings: Settings, stats: LoopStats) {
        self.settings = settings
        self.stats = stats
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        pendingOut = context.channel.allocator.buffer(capacity: 4096)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            if var partial = self.cumulation {
                self.cumulation = nil
                guard try completePartialPacket(&partial, from: &buffer) else {
                    self.cumulation = partial
                    return
                }
                try process(&partial)
            }
            try process(&buffer)
            if buffer.readableBytes > 0 {
                self.cumulation = savePartialPacket(&buffer, allocator: context.channel.allocator)
            }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingOut.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(pendingOut), promise: nil)
            pendingOut.clear()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && feedBatch != nil && !feedScheduled { feed() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func process(_ buffer: inout ByteBuffer) throws {
        while buffer.readableBytes > 0 {
            let v5 = version == .v5
            let (consumed, stop) = try buffer.withUnsafeReadableBytes { raw in
                try scanHotPackets(raw, v5: v5, sink: self)
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            switch stop {
            case .needMore:
                return
            case .control(let length):
                var frame = buffer.readSlice(length: length)!
                guard let packet = try decoder.decode(buffer: &frame) else { throw WireError("undecodable") }
                handleControl(packet)
            }
        }
    }

    func onPublish(qos: UInt8, packetID: UInt16, payload: UnsafeRawBufferPointer) {
        stats.sinkReceived &+= 1
        if qos == 1 {
            pendingOut.writeAck(type: 4, packetID: packetID)
        } else if qos == 2 {
            pendingOut.writeAck(type: 5, packetID: packetID)
        }
    }

    func onAck(type: UInt8, packetID: UInt16) {
        if type == 6 { pendingOut.writeAck(type: 7, packetID: packetID) }
    }

    func onPing(type: UInt8) {
        if type == 12 { pendingOut.writeInteger(UInt16(0xD000)) }
    }

    private func handleControl(_ packet: Packet) {
        switch packet {
        case .connect(let connect):
            version = connect.protocolVersion
            Packet.connack(ConnAckPacket()).write(version: version, to: &pendingOut)
        case .subscribe(let subscribe):
            let codes = subscribe.subscriptions.map { ReasonCode($0.options.qos.rawValue) }
            Packet.suback(SubAckPacket(packetID: subscribe.packetID, reasonCodes: codes))
                .write(version: version, to: &pendingOut)
            if settings.feed, feedBatch == nil, let context {
                let template = PublishTemplate(topic: "bench/feed", payloadSize: settings.feedSize,
                                               qos: .atMostOnce, version: version,
                                               allocator: context.channel.allocator)
                feedBatch = template.batch(settings.batch, allocator: context.channel.allocator)
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                context.eventLoop.execute { bound.value.feed() }
            }
        case .unsubscribe(let unsubscribe):
            Packet.unsuback(UnsubAckPacket(packetID: unsubscribe.packetID,
                                           reasonCodes: unsubscribe.filters.map { _ in .success }))
                .write(version: version, to: &pendingOut)
        case .disconnect:
            context?.close(promise: nil)
        default:
            break
        }
    }

    private func feed() {
        feedScheduled = false
        guard let context, let feedBatch, !closed else { return }
        var writes = 0
        while context.channel.isWritable && writes < 16 {
            context.write(wrapOutboundOut(feedBatch), promise: nil)
            writes += 1
        }
        context.flush()
        if context.channel.isWritable {
            feedScheduled = true
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.feed() }
        }
    }
}

/// Starts the in-process sink on 127.0.0.1 with an ephemeral port.
func startSink(group: any EventLoopGroup, registry: StatsRegistry, settings: SinkHandler.Settings) throws -> any Channel {
    try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let stats = registry.on(channel.eventLoop)
                try channel.pipeline.syncOperations.addHandler(SinkHandler(settings: settings, stats: stats))
            }
        }
        .bind(host: "127.0.0.1", port: 0)
        .wait()
}

/// The `floor-server` helper process of `idle --floor`: a bare NIO TCP server that accepts and holds channels
/// with nothing in their pipelines, with as many event loops as cores (as Midge has). It prints its port and
/// runs until its standard input closes (its parent exited or closed the pipe).
func runFloorServer(threads: Int) throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    let channel = try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
        .bind(host: "127.0.0.1", port: 0)
        .wait()
    print("PORT \(channel.localAddress?.port ?? 0)")
    fflush(nil)  // every output stream (stdout is a C global Swift 6 will not touch)
    var byte: UInt8 = 0
    while read(0, &byte, 1) > 0 {}
    try? channel.close().wait()
    try? group.syncShutdownGracefully()
}
