package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.ptune.FuzzFiles;
import io.ptune.ModelFormatException;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.adapter.Safetensors.TensorInfo;
import java.nio.file.Path;

/**
 * Fuzzes the Java safetensors reader: the header, then every tensor it declares. Seeds:
 * tests-java/resources/io/ptune/adapter/SafetensorsFuzzTestInputs/safetensors/. Run as a
 * regression test in `mvn verify`; fuzzed by toolchains/fuzz-java.sh.
 */
class SafetensorsFuzzTest {
    @FuzzTest
    void safetensors(byte[] input) {
        Path file = FuzzFiles.write(FuzzFiles.folder("safetensors"), "model.safetensors", input);
        SafetensorsFile opened;
        try {
            opened = Safetensors.open(file);
        } catch (ModelFormatException e) {
            FuzzFiles.assertNamesFile(e, file);
            return;
        }
        long total = 0;
        for (TensorInfo info : opened.tensors().values()) {
            assertTrue(info.begin() >= 0 && info.end() >= info.begin(), info::toString);
            total += info.end() - info.begin();
            try {
                FloatTensor tensor = opened.readFloat(info.name());
                assertEquals(info.numel(), tensor.data().length, info::toString);
            } catch (ModelFormatException e) {
                FuzzFiles.assertNamesFile(e, file);
            }
        }
        // A valid header covers the data section exactly.
        assertEquals(input.length - opened.dataStart(), total);
    }
}
