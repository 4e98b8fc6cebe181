import Host

do {
    let command = try MidgeCommand.parse()
    try await command.execute()
} catch {
    MidgeCommand.exit(withError: error)
}
