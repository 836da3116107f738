import DAClient

/// A namespace from its name, as the DA tests write them.
package func namespace(_ name: String) -> DANamespace { DANamespace(name: name) }

/// A string's UTF-8 bytes.
package func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
