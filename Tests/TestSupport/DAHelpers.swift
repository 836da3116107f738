import DA

func namespace(_ name: String) -> DANamespace { DANamespace(name: name) }

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
