import Foundation
import Host

// `midge passwd|users|acl ...`: administration tools with flags of their own.
if let status = AdminTools.run(Array(CommandLine.arguments.dropFirst())) {
    exit(status)
}

do {
    let command = try MidgeCommand.parse()
    try command.detachIfAsked()
    try await command.execute()
} catch {
    MidgeCommand.exit(withError: error)
}
