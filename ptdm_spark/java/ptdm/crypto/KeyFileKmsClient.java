package ptdm.crypto;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.KmsClient;

/**
 * A Parquet KMS client whose master keys are named lines of a local key file.
 *
 * <p>The file (path in the Hadoop property {@code ptdm.encryption.key.file}) holds one key per
 * line, {@code name: base64-key}, 16, 24 or 32 bytes; blank lines and lines starting with '#'
 * are ignored. Parquet's key tools hand this client the data keys (or, with double wrapping,
 * the key-encryption keys) to wrap: each is sealed with AES-GCM under the named master key, the
 * key's name as associated data, and stored as base64(nonce | ciphertext | tag). The master keys
 * never leave the process; the same format is read by ptdm_spark/protect/encryption.py (pyarrow).
 */
public class KeyFileKmsClient implements KmsClient {
  public static final String KEY_FILE_PROPERTY = "ptdm.encryption.key.file";
  private static final int NONCE_BYTES = 12;
  private static final int TAG_BITS = 128;
  private static final SecureRandom RANDOM = new SecureRandom();

  private String keyFile;
  private Map<String, byte[]> masterKeys;

  @Override
  public void initialize(Configuration configuration, String kmsInstanceID, String kmsInstanceURL,
                         String accessToken) throws KeyAccessDeniedException {
    keyFile = configuration.getTrimmed(KEY_FILE_PROPERTY, "");
    if (keyFile.isEmpty()) {
      throw new KeyAccessDeniedException("no key file: set security.encryption.key_file (Hadoop property "
          + KEY_FILE_PROPERTY + ")");
    }
    masterKeys = readKeyFile(keyFile);
  }

  /** Parse the key file; every problem is one line naming the file (and the line). */
  static Map<String, byte[]> readKeyFile(String path) throws KeyAccessDeniedException {
    List<String> lines;
    try {
      lines = Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new KeyAccessDeniedException("key file " + path + ": no such file");
    } catch (IOException e) {
      throw new KeyAccessDeniedException("key file " + path + ": cannot be read (" + e + ")");
    }
    Map<String, byte[]> keys = new HashMap<>();
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i).trim();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      int colon = line.indexOf(':');
      String name = colon < 0 ? "" : line.substring(0, colon).trim();
      if (name.isEmpty()) {
        throw new KeyAccessDeniedException("key file " + path + " line " + (i + 1) + ": expected 'name: base64-key'");
      }
      byte[] key;
      try {
        key = Base64.getDecoder().decode(line.substring(colon + 1).trim());
      } catch (IllegalArgumentException e) {
        throw new KeyAccessDeniedException("key file " + path + " line " + (i + 1) + ": the key of '" + name
            + "' is not base64");
      }
      if (key.length != 16 && key.length != 24 && key.length != 32) {
        throw new KeyAccessDeniedException("key file " + path + " line " + (i + 1) + ": the key of '" + name
            + "' has " + key.length * 8 + " bits (128, 192 or 256 needed)");
      }
      keys.put(name, key);
    }
    return keys;
  }

  private byte[] masterKey(String name) throws KeyAccessDeniedException {
    byte[] key = masterKeys.get(name);
    if (key == null) {
      throw new KeyAccessDeniedException("master key '" + name + "' is not in the key file " + keyFile);
    }
    return key;
  }

  private static Cipher cipher(int mode, byte[] key, byte[] nonce, String name) throws GeneralSecurityException {
    Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
    c.init(mode, new SecretKeySpec(key, "AES"), new GCMParameterSpec(TAG_BITS, nonce));
    c.updateAAD(name.getBytes(StandardCharsets.UTF_8));
    return c;
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) throws KeyAccessDeniedException {
    byte[] nonce = new byte[NONCE_BYTES];
    RANDOM.nextBytes(nonce);
    try {
      byte[] sealed = cipher(Cipher.ENCRYPT_MODE, masterKey(masterKeyIdentifier), nonce, masterKeyIdentifier)
          .doFinal(keyBytes);
      byte[] out = new byte[NONCE_BYTES + sealed.length];
      System.arraycopy(nonce, 0, out, 0, NONCE_BYTES);
      System.arraycopy(sealed, 0, out, NONCE_BYTES, sealed.length);
      return Base64.getEncoder().encodeToString(out);
    } catch (GeneralSecurityException e) {
      throw new KeyAccessDeniedException("cannot wrap a key with master key '" + masterKeyIdentifier + "': " + e);
    }
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) throws KeyAccessDeniedException {
    byte[] key = masterKey(masterKeyIdentifier);
    byte[] in;
    try {
      in = Base64.getDecoder().decode(wrappedKey);
    } catch (IllegalArgumentException e) {
      throw new KeyAccessDeniedException("a wrapped key of master key '" + masterKeyIdentifier + "' is not base64");
    }
    if (in.length <= NONCE_BYTES) {
      throw new KeyAccessDeniedException("a wrapped key of master key '" + masterKeyIdentifier + "' is too short");
    }
    byte[] nonce = java.util.Arrays.copyOfRange(in, 0, NONCE_BYTES);
    try {
      return cipher(Cipher.DECRYPT_MODE, key, nonce, masterKeyIdentifier).doFinal(in, NONCE_BYTES, in.length - NONCE_BYTES);
    } catch (GeneralSecurityException e) {
      throw new KeyAccessDeniedException("master key '" + masterKeyIdentifier + "' of the key file " + keyFile
          + " does not open this file's keys (another key under the same name?)");
    }
  }
}
