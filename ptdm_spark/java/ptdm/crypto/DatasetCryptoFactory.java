package ptdm.crypto;

import java.util.ArrayList;
import java.util.List;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.crypto.DecryptionPropertiesFactory;
import org.apache.parquet.crypto.FileDecryptionProperties;
import org.apache.parquet.crypto.FileEncryptionProperties;
import org.apache.parquet.crypto.ParquetCryptoRuntimeException;
import org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory;
import org.apache.parquet.hadoop.api.WriteSupport.WriteContext;
import org.apache.parquet.schema.MessageType;

/**
 * Parquet's properties-driven crypto factory, told per file which columns it has.
 *
 * <p>One session writes every table of a dataset, and Parquet's factory fails a file whose
 * schema lacks a column named in {@code parquet.encryption.column.keys}. This factory reads
 * ptdm's own properties instead and hands the properties-driven factory a per-file copy:
 * <ul>
 *   <li>a data file holding any of the image columns ({@code ptdm.encryption.columns}, default
 *       {@code content,image}): those columns under {@code ptdm.encryption.column.key}, the
 *       footer (schema, statistics) and every other column under
 *       {@code ptdm.encryption.footer.key} (complete column encryption);</li>
 *   <li>any other data file: every column and the footer under the footer key (uniform);</li>
 *   <li>files under {@code _delta_log/} (Delta checkpoints): plaintext, so that Delta readers
 *       without a JVM (deltalake) still find the table's files. They hold file names, sizes and
 *       statistics (min/max of non-binary columns), as the JSON commits beside them do.</li>
 * </ul>
 * Reading is the properties-driven factory's: plaintext files stay readable.
 */
public class DatasetCryptoFactory implements org.apache.parquet.crypto.EncryptionPropertiesFactory,
    DecryptionPropertiesFactory {
  public static final String FOOTER_KEY_PROPERTY = "ptdm.encryption.footer.key";
  public static final String COLUMN_KEY_PROPERTY = "ptdm.encryption.column.key";
  public static final String COLUMNS_PROPERTY = "ptdm.encryption.columns";
  public static final String COLUMNS_DEFAULT = "content,image";

  private final PropertiesDrivenCryptoFactory delegate = new PropertiesDrivenCryptoFactory();

  @Override
  public FileEncryptionProperties getFileEncryptionProperties(Configuration conf, Path tempFilePath,
                                                              WriteContext fileWriteContext)
      throws ParquetCryptoRuntimeException {
    if (tempFilePath != null && tempFilePath.toUri().getPath().contains("/_delta_log/")) {
      return null;
    }
    String footerKey = conf.getTrimmed(FOOTER_KEY_PROPERTY, "");
    if (footerKey.isEmpty()) {
      return null; // encryption off for this session
    }
    String columnKey = conf.getTrimmed(COLUMN_KEY_PROPERTY, "");
    if (columnKey.isEmpty()) {
      columnKey = footerKey;
    }
    MessageType schema = fileWriteContext.getSchema();
    List<String> present = new ArrayList<>();
    for (String column : conf.getTrimmedStrings(COLUMNS_PROPERTY, COLUMNS_DEFAULT.split(","))) {
      if (!column.isEmpty() && schema.containsPath(column.split("\\."))) {
        present.add(column);
      }
    }
    Configuration fileConf = new Configuration(conf);
    fileConf.unset(PropertiesDrivenCryptoFactory.UNIFORM_KEY_PROPERTY_NAME);
    fileConf.unset(PropertiesDrivenCryptoFactory.COLUMN_KEYS_PROPERTY_NAME);
    fileConf.unset(PropertiesDrivenCryptoFactory.FOOTER_KEY_PROPERTY_NAME);
    if (present.isEmpty()) {
      fileConf.set(PropertiesDrivenCryptoFactory.UNIFORM_KEY_PROPERTY_NAME, footerKey);
    } else {
      fileConf.set(PropertiesDrivenCryptoFactory.FOOTER_KEY_PROPERTY_NAME, footerKey);
      fileConf.set(PropertiesDrivenCryptoFactory.COLUMN_KEYS_PROPERTY_NAME, columnKey + ":" + String.join(",", present));
      // and every other column under the footer key: no page of the file is plaintext
      fileConf.setBoolean(PropertiesDrivenCryptoFactory.COMPLETE_COLUMN_ENCRYPTION_PROPERTY_NAME, true);
    }
    return delegate.getFileEncryptionProperties(fileConf, tempFilePath, fileWriteContext);
  }

  @Override
  public FileDecryptionProperties getFileDecryptionProperties(Configuration conf, Path filePath)
      throws ParquetCryptoRuntimeException {
    return delegate.getFileDecryptionProperties(conf, filePath);
  }
}
