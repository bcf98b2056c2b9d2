package io.ptune.nativebridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.PtuneException;
import io.ptune.TestPaths;
import java.io.IOException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/** How a PyTorch 2.x platform jar finds libtorch (toolchains/torch2.cmake, cuda.cmake). */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class TorchLibrariesTest {
    private static Properties descriptor(String text) throws IOException {
        Properties properties = new Properties();
        properties.load(new StringReader(text));
        return properties;
    }

    private static final String CUDA_BUILD =
            "libtorch=external\nlibraries=c10,torch_cpu,c10_cuda,torch_cuda,torch\ntorch.version=2.14.1\ncuda=ON\n";

    @Test
    void debianBuildsLoadNothingThemselves() throws IOException {
        assertFalse(TorchLibraries.external(Optional.of(descriptor("libtorch=system\n"))));
        assertFalse(TorchLibraries.external(Optional.empty()));
        assertTrue(TorchLibraries.external(Optional.of(descriptor(CUDA_BUILD))));
    }

    @Test
    void loadsTheLibrariesInTheDescriptorsOrder() throws IOException {
        assertEquals(List.of("c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch"),
                TorchLibraries.libraries(descriptor(CUDA_BUILD)));
        assertEquals("PyTorch 2.14.1 with CUDA", TorchLibraries.builtAgainst(descriptor(CUDA_BUILD)));
    }

    @Test
    void takesTheFolderFromPtuneLibtorchDir(@TempDir Path dir) throws IOException {
        Files.createFile(dir.resolve("libtorch_cpu.so"));
        assertEquals(dir, TorchLibraries.locate(descriptor(CUDA_BUILD), Map.of("PTUNE_LIBTORCH_DIR", dir.toString())));
    }

    @Test
    void aFolderWithoutLibtorchSaysWhatToSet(@TempDir Path dir) throws IOException {
        PtuneException e = assertThrows(PtuneException.class,
                () -> TorchLibraries.locate(descriptor(CUDA_BUILD), Map.of("PTUNE_LIBTORCH_DIR", dir.toString())));
        assertTrue(e.getMessage().contains("set PTUNE_LIBTORCH_DIR to the folder holding libtorch_cpu.so"), e.getMessage());
    }

    @Test
    void noLibtorchAnywhereSaysWhatToSet(@TempDir Path dir) throws IOException {
        Map<String, String> env = Map.of("PTUNE_TORCH_PYTHON", dir.resolve("no-python").toString());
        PtuneException e = assertThrows(PtuneException.class, () -> TorchLibraries.locate(descriptor(CUDA_BUILD), env));
        assertTrue(e.getMessage().contains("built against PyTorch 2.14.1 with CUDA"), e.getMessage());
        assertTrue(e.getMessage().contains("set PTUNE_LIBTORCH_DIR to the folder holding libtorch_cpu.so"), e.getMessage());
    }
}
