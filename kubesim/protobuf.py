"""placeholder"""
class ProtobufError(Exception):
    pass
def decode(raw: bytes) -> object:
    raise ProtobufError("protobuf not yet supported")
