import COpenSSL

/// The symmetric and X25519 primitives of the age file format, over libcrypto.
public enum CryptoError: Error, Equatable, Sendable {
    /// libcrypto refused (bad key, all-zero shared secret).
    case failed(String)
    /// An AEAD tag did not verify: wrong key or altered data.
    case authenticationFailed
}

public enum Crypto {
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(kt_random(&out, count) == 1, "the system random generator failed")
        return out
    }

    public static func x25519PublicKey(privateKey: [UInt8]) throws -> [UInt8] {
        guard privateKey.count == 32 else { throw CryptoError.failed("an X25519 private key is 32 bytes") }
        var out = [UInt8](repeating: 0, count: 32)
        guard kt_x25519_public(privateKey, &out) == 1 else { throw CryptoError.failed("X25519 public key") }
        return out
    }

    /// X25519(privateKey, peer); fails on an all-zero shared secret (a low-order peer key).
    public static func x25519(privateKey: [UInt8], peer: [UInt8]) throws -> [UInt8] {
        guard privateKey.count == 32, peer.count == 32 else { throw CryptoError.failed("X25519 keys are 32 bytes") }
        var out = [UInt8](repeating: 0, count: 32)
        guard kt_x25519(privateKey, peer, &out) == 1 else { throw CryptoError.failed("X25519 produced no shared secret") }
        return out
    }

    public static func hkdfSHA256(ikm: [UInt8], salt: [UInt8], info: [UInt8], count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(kt_hkdf_sha256(ikm, ikm.count, salt, salt.count, info, info.count, &out, count) == 1, "HKDF-SHA256 failed")
        return out
    }

    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        precondition(kt_hmac_sha256(key, key.count, message, message.count, &out) == 1, "HMAC-SHA256 failed")
        return out
    }

    /// ChaCha20-Poly1305 without associated data: ciphertext followed by the 16-byte tag.
    public static func seal(key: [UInt8], nonce: [UInt8], _ plaintext: ArraySlice<UInt8>) -> [UInt8] {
        precondition(key.count == 32 && nonce.count == 12)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        let ok = plaintext.withUnsafeBufferPointer { p in kt_chacha20poly1305(1, key, nonce, p.baseAddress, p.count, &out) }
        precondition(ok == 1, "ChaCha20-Poly1305 seal failed")
        return out
    }

    public static func open(key: [UInt8], nonce: [UInt8], _ sealed: ArraySlice<UInt8>) throws -> [UInt8] {
        guard key.count == 32, nonce.count == 12, sealed.count >= 16 else { throw CryptoError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: sealed.count - 16)
        let ok = sealed.withUnsafeBufferPointer { p in kt_chacha20poly1305(0, key, nonce, p.baseAddress, p.count, &out) }
        guard ok == 1 else {
            // Decrypted before the tag was checked: unauthenticated plaintext, never left behind.
            cleanse(&out)
            throw CryptoError.authenticationFailed
        }
        return out
    }

    /// Equality that takes the same time wherever the first difference is.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var acc: UInt8 = 0
        for i in a.indices { acc |= a[i] ^ b[i] }
        return acc == 0
    }
}
