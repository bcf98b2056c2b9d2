package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.ptune.DatasetException;
import io.ptune.FuzzFiles;
import java.nio.file.Path;

/**
 * Fuzzes the dataset loaders: Alpaca records (a JSON array or JSON Lines) and classification data
 * (CSV, TSV, JSON / JSON Lines). Seeds: tests-java/resources/io/ptune/data/DatasetFuzzTestInputs/
 * <method>/. Run as regression tests in `mvn verify`; fuzzed by toolchains/fuzz-java.sh.
 */
class DatasetFuzzTest {
    @FuzzTest
    void alpaca(byte[] input) {
        Path file = FuzzFiles.write(FuzzFiles.folder("alpaca"), "data.json", input);
        AlpacaDataset data;
        try {
            data = AlpacaDataset.load(file);
        } catch (DatasetException e) {
            FuzzFiles.assertNamesFile(e, file);
            return;
        }
        assertFalse(data.examples().isEmpty());
        for (AlpacaExample example : data.examples()) {
            assertTrue(example.instruction() != null && example.input() != null && example.output() != null);
        }
    }

    @FuzzTest
    void classificationCsv(byte[] input) {
        classification(input, "data.csv");
    }

    @FuzzTest
    void classificationTsv(byte[] input) {
        classification(input, "data.tsv");
    }

    @FuzzTest
    void classificationJson(byte[] input) {
        classification(input, "data.jsonl");
    }

    private static void classification(byte[] input, String name) {
        Path file = FuzzFiles.write(FuzzFiles.folder("classification"), name, input);
        ClassificationDataset data;
        try {
            data = ClassificationDataset.load(file);
        } catch (DatasetException e) {
            FuzzFiles.assertNamesFile(e, file);
            return;
        }
        assertTrue(data.labels().size() >= 2);
        int[] indices = data.labelIndices();
        for (int index : indices) {
            assertTrue(index >= 0 && index < data.labels().size());
        }
    }
}
