package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.ptune.AdapterException;
import io.ptune.FuzzFiles;
import io.ptune.TestPaths;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.SoftPrompt;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes the reading of an adapter directory: adapter_config.json and adapter_model.safetensors,
 * loaded into the real stories260k model. The input is {@code [u16 little-endian L][L bytes of
 * adapter_config.json][adapter_model.safetensors]} (no safetensors file when nothing follows).
 * Seeds: tests-java/resources/io/ptune/adapter/AdapterConfigFuzzTestInputs/adapterDir/. Run as a
 * regression test in `mvn verify`; fuzzed by toolchains/fuzz-java.sh.
 */
class AdapterConfigFuzzTest {
    private static Model model;

    private static synchronized Model model() {
        if (model == null) {
            model = Model.load(TestPaths.stories260k());
        }
        return model;
    }

    @AfterAll
    static synchronized void close() {
        if (model != null) {
            model.close();
            model = null;
        }
    }

    @FuzzTest
    void adapterDir(byte[] input) {
        int length = input.length < 2 ? input.length : Math.min(input.length - 2, (input[0] & 0xFF) | (input[1] & 0xFF) << 8);
        int start = input.length < 2 ? 0 : 2;
        Path dir = FuzzFiles.folder("adapter");
        FuzzFiles.write(dir, PromptAdapter.CONFIG_FILE, Arrays.copyOfRange(input, start, start + length));
        if (start + length < input.length) {
            FuzzFiles.write(dir, PromptAdapter.WEIGHTS_FILE, Arrays.copyOfRange(input, start + length, input.length));
        }
        try {
            PromptAdapter.baseModelNameOrPath(dir);
        } catch (AdapterException e) {
            assertNamesAdapterFile(e, dir);
            return;
        }
        try {
            SoftPrompt prompt = PromptAdapter.readInputPrompt(dir, model().architecture(), null);
            assertEquals(model().architecture().hiddenSize(), prompt.dim());
        } catch (AdapterException e) {
            assertNamesAdapterFile(e, dir);
        }
        try (PromptModule module = PromptAdapter.load(dir, model())) {
            assertTrue(module.numVirtualTokens() > 0);
        } catch (AdapterException e) {
            assertNamesAdapterFile(e, dir);
        }
    }

    /** An adapter error names the directory (or a file in it, by its full path). */
    private static void assertNamesAdapterFile(AdapterException e, Path dir) {
        assertTrue(e.getMessage() != null && e.getMessage().contains(dir.toString()),
                () -> "the message does not name " + dir + ": " + e.getMessage());
    }
}
