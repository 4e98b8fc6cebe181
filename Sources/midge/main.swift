import Host

// `midge`: the broker's command line over the built-in plugins.
await MidgeMain.run(registry: BuiltInPlugins.registry)
