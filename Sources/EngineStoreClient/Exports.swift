// Engine code imports only EngineStoreClient; the message types come with it.
@_exported import EngineStoreWire
