// The block layer as one module: dependents `import Block` and see every sub-target's public API.
@_exported import Chain
@_exported import Store
@_exported import Execution
@_exported import Sync
@_exported import Production
