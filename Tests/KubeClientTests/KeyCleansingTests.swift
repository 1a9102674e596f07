import KubetraceTestKit
import Foundation
@testable import KubeTLS
import Synchronization
import Testing

/// Key material is zeroed (OPENSSL_cleanse) before its memory is freed (issue 19). What is
/// asserted: the buffers this code owns. What cannot be: copies Swift or Foundation made
/// elsewhere (a `String` from `PrivateKeyPEM.pem`, a decoder's `Data`), and freed memory itself.
@Suite(.serialized) struct KeyCleansingTests {
    /// Runs `body`, which releases one buffer at `address`, and returns whether that buffer's
    /// bytes were all zero just before it was freed (nil: it was not freed).
    func zeroedWhenFreed(_ body: () -> UInt) -> Bool? {
        let seen = Mutex<[UInt: Bool]>([:])
        SecretBuffer.cleansedObserver.withLock {
            $0 = { bytes in
                let address = UInt(bitPattern: bytes.baseAddress)
                let zero = bytes.allSatisfy { $0 == 0 }
                seen.withLock { $0[address] = zero }
            }
        }
        defer { SecretBuffer.cleansedObserver.withLock { $0 = nil } }
        let address = body()
        return seen.withLock { $0[address] }
    }

    @Test func aSecretBufferIsZeroedBeforeItIsFreed() {
        let zeroed = zeroedWhenFreed {
            let buffer = SecretBuffer(copying: Array("-----BEGIN PRIVATE KEY-----\nCANARY\n".utf8))
            #expect(buffer.withCString { String(cString: $0) } == "-----BEGIN PRIVATE KEY-----\nCANARY\n")
            return buffer.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        }
        #expect(zeroed == true)
    }

    @Test func aPrivateKeyIsZeroedWhenItsLastCopyGoes() throws {
        let issued = try CertificateAuthority.generate(commonName: "cleanse-test")
        let zeroed = zeroedWhenFreed {
            // Keys libcrypto made and keys read from text both live in a SecretBuffer.
            let key = try! ES256Key.generate().privateKey
            let copy = key
            #expect(copy == key && key.withCString { strlen($0) } > 100)
            #expect(PrivateKeyPEM(key.pem) == key)
            #expect(try! X509.keyMatches(certificatePEM: issued.certificate.certificatePEM, privateKeyPEM: issued.certificate.privateKey))
            return key.buffer.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        }
        #expect(zeroed == true)
    }

    @Test func cleanseZeroesAnArrayInPlace() {
        var key = Crypto.randomBytes(32)
        key[0] = 1
        let before = key.withUnsafeBytes { $0.baseAddress }
        Crypto.cleanse(&key)
        #expect(key == [UInt8](repeating: 0, count: 32))
        #expect(key.withUnsafeBytes { $0.baseAddress } == before, "in place, not a copy-on-write copy")
        var data: Data? = Data("secret".utf8)
        Crypto.cleanse(&data)
        #expect(data == Data(count: 6))
    }
}
