package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.ptune.FuzzFiles;
import io.ptune.ModelFormatException;
import io.ptune.nativebridge.ModelSpecOptions;
import java.nio.file.Path;

/**
 * Fuzzes the reader of a model's config.json (every family). Seeds:
 * tests-java/resources/io/ptune/model/ConfigJsonFuzzTestInputs/configJson/. Run as a regression
 * test in `mvn verify`; fuzzed by toolchains/fuzz-java.sh.
 */
class ConfigJsonFuzzTest {
    @FuzzTest
    void configJson(byte[] input) {
        Path config = FuzzFiles.write(FuzzFiles.folder("config"), "config.json", input);
        Architecture arch;
        try {
            arch = Architecture.fromConfigJson(config);
        } catch (ModelFormatException e) {
            FuzzFiles.assertNamesFile(e, config);
            return;
        }
        // An accepted config describes a network the native core can be built from.
        assertTrue(Architecture.MODEL_TYPES.contains(arch.modelType()), arch::modelType);
        assertTrue(arch.vocabSize() > 0 && arch.hiddenSize() > 0 && arch.numLayers() > 0, arch::toString);
        assertTrue(arch.numHeads() > 0 && arch.numKvHeads() > 0 && arch.headDim() > 0, arch::toString);
        assertEquals(0, arch.numHeads() % arch.numKvHeads(), arch::toString);
        assertTrue(arch.maxPositionEmbeddings() >= 0, arch::toString);
        for (long id : arch.eosTokenIds()) {
            assertTrue(id >= 0 && id < arch.vocabSize(), arch::toString);
        }
        ModelSpecOptions spec = arch.nativeSpec();
        assertEquals(arch.hiddenSize(), spec.hiddenSize());
        assertEquals(arch.numLayers(), spec.numLayers());
    }
}
