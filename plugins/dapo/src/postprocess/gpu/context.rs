//! The GPU side of the post-processor: device, queue and pipelines, created once per engine; buffers that grow to
//! the largest batch seen and are reused; one submission per batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use loupe_sdk::{PostprocessRequest, ScoreMap};

use super::layout::{BatchLayout, BatchShape, PARAMS_WORDS, Sizes};

/// Why the GPU could not compute a batch. `fatal` failures (device lost, uncaptured errors) retire the GPU.
#[derive(Debug)]
pub(crate) struct GpuFailure {
    pub message: String,
    pub fatal: bool,
}

impl GpuFailure {
    fn new(message: impl Into<String>, fatal: bool) -> Self {
        Self { message: message.into(), fatal }
    }
}

/// Per-image results read back from the GPU.
pub(crate) struct GpuMaps {
    pub anomaly: ScoreMap,
    pub pixel_types: Vec<u16>,
    pub class_maps: Vec<ScoreMap>,
}

/// The compute pipelines, one per kernel of `kernels.wgsl`.
struct Pipelines {
    normalize_patches: wgpu::ComputePipeline,
    layer_softmax: wgpu::ComputePipeline,
    sum_layers: wgpu::ComputePipeline,
    upsample_anomaly: wgpu::ComputePipeline,
    smooth_rows: wgpu::ComputePipeline,
    smooth_columns: wgpu::ComputePipeline,
    classify: wgpu::ComputePipeline,
    upsample_classes: wgpu::ComputePipeline,
}

/// The shared buffers (see `layout.rs`) and the bind group over them.
struct Buffers {
    params: wgpu::Buffer,
    feats: wgpu::Buffer,
    consts: wgpu::Buffer,
    scratch: wgpu::Buffer,
    maps: wgpu::Buffer,
    types: wgpu::Buffer,
    class_maps: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Bindings of `kernels.wgsl`, in binding order: (read-only, label).
const BINDINGS: [(bool, &str); 7] = [
    (true, "params"),
    (true, "feats"),
    (true, "consts"),
    (false, "scratch"),
    (false, "maps"),
    (false, "types"),
    (false, "class_maps"),
];

/// Device, pipelines and reusable buffers.
pub(crate) struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    layout: wgpu::BindGroupLayout,
    pipelines: Pipelines,
    buffers: Option<Buffers>,
    limits: wgpu::Limits,
    /// Set by the device-lost callback and the uncaptured-error handler.
    broken: Arc<AtomicBool>,
    /// Tests only: destroy the device right after the next batch is submitted (a device lost mid-batch).
    lose_after_submit: bool,
}

const WORKGROUP_1D: u32 = 64;
const WORKGROUP_2D: u32 = 16;

impl GpuContext {
    /// Opens the adapter's device with its own limits (large storage buffers) and builds the pipelines.
    pub fn new(adapter: &wgpu::Adapter) -> Result<Self, String> {
        let limits = adapter.limits();
        if (limits.max_storage_buffers_per_shader_stage as usize) < BINDINGS.len() {
            return Err(format!(
                "the adapter allows {} storage buffers per shader stage, the kernels need {}",
                limits.max_storage_buffers_per_shader_stage,
                BINDINGS.len()
            ));
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("loupe-dapo post-processing"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| e.to_string())?;
        let broken = Arc::new(AtomicBool::new(false));
        let flag = broken.clone();
        device.set_device_lost_callback(move |reason, message| {
            log::warn!("GPU device lost ({reason:?}): {message}");
            flag.store(true, Ordering::SeqCst);
        });
        let flag = broken.clone();
        // The default handler panics; errors outside our error scopes only mark the device as unusable.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::warn!("GPU error: {e}");
            flag.store(true, Ordering::SeqCst);
        }));

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("kernels.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("kernels.wgsl").into()),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = BINDINGS
            .iter()
            .enumerate()
            .map(|(i, &(read_only, _))| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("loupe"), entries: &entries });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("loupe"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pipelines = Pipelines {
            normalize_patches: pipeline("normalize_patches"),
            layer_softmax: pipeline("layer_softmax"),
            sum_layers: pipeline("sum_layers"),
            upsample_anomaly: pipeline("upsample_anomaly"),
            smooth_rows: pipeline("smooth_rows"),
            smooth_columns: pipeline("smooth_columns"),
            classify: pipeline("classify"),
            upsample_classes: pipeline("upsample_classes"),
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("the kernels do not build on this adapter: {e}"));
        }
        Ok(Self { device, queue, layout, pipelines, buffers: None, limits, broken, lose_after_submit: false })
    }

    /// Destroys the device (as a driver reset would); later batches fail and fall back to the CPU.
    pub fn destroy_device(&mut self) {
        self.device.destroy();
    }

    /// Makes the next batch lose the device right after its submission, before its results are read back: the
    /// device is really destroyed (`wgpu::Device::destroy`), at the moment a driver reset hurts most.
    pub fn lose_device_after_next_submit(&mut self) {
        self.lose_after_submit = true;
    }

    /// Lowers the buffer limit that batches are planned against (not the device's own), to test splitting.
    pub fn lower_buffer_limit(&mut self, bytes: u64) {
        self.limits.max_storage_buffer_binding_size = bytes;
    }

    /// Whether a batch of this shape fits the device's buffer and dispatch limits (and u32 element offsets).
    pub fn fits(&self, shape: &BatchShape) -> bool {
        let binding = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size).min(u32::MAX.into());
        let groups = self.limits.max_compute_workgroups_per_dimension as usize;
        shape.sizes.largest_bytes() <= binding
            && (4 * PARAMS_WORDS * shape.images) as u64 <= binding
            && shape.max_rows.div_ceil(WORKGROUP_1D as usize) <= groups
            && shape.max_width.div_ceil(WORKGROUP_2D as usize) <= groups
            && shape.max_height.div_ceil(WORKGROUP_2D as usize) <= groups
            && shape.images * shape.classes.max(1) <= groups
    }

    /// Buffers at least as large as `sizes` asks, reallocated (with a new bind group) only when they grow.
    fn ensure_buffers(&mut self, sizes: &Sizes, params_words: usize) {
        let bytes = |words: usize| (4 * words.max(4) as u64).next_multiple_of(256);
        let want = [
            bytes(params_words),
            bytes(sizes.feats),
            bytes(sizes.consts),
            bytes(sizes.scratch),
            bytes(sizes.maps),
            bytes(sizes.types),
            bytes(sizes.class_maps),
        ];
        let readback_bytes = bytes(sizes.readback);
        if let Some(b) = &self.buffers {
            let have = [&b.params, &b.feats, &b.consts, &b.scratch, &b.maps, &b.types, &b.class_maps];
            if have.iter().zip(want).all(|(buf, w)| buf.size() >= w) && b.readback.size() >= readback_bytes {
                return;
            }
        }
        // Keep what is already larger, so alternating batch shapes do not reallocate every time.
        let old = self.buffers.take();
        let sizes_now: [u64; 7] = match &old {
            Some(b) => [
                b.params.size(),
                b.feats.size(),
                b.consts.size(),
                b.scratch.size(),
                b.maps.size(),
                b.types.size(),
                b.class_maps.size(),
            ],
            None => [0; 7],
        };
        let readback_now = old.as_ref().map_or(0, |b| b.readback.size());
        drop(old);
        let storage = |i: usize| {
            let (read_only, label) = BINDINGS[i];
            let mut usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            if !read_only {
                usage |= wgpu::BufferUsages::COPY_SRC;
            }
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: want[i].max(sizes_now[i]),
                usage,
                mapped_at_creation: false,
            })
        };
        let [params, feats, consts, scratch, maps, types, class_maps] = std::array::from_fn(storage);
        let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: readback_bytes.max(readback_now),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let all = [&params, &feats, &consts, &scratch, &maps, &types, &class_maps];
        let entries: Vec<wgpu::BindGroupEntry> = all
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("loupe"),
            layout: &self.layout,
            entries: &entries,
        });
        self.buffers = Some(Buffers { params, feats, consts, scratch, maps, types, class_maps, readback, bind_group });
    }

    /// Computes the per-pixel maps of a batch: uploads, one command buffer, one submission, one read-back.
    pub fn run(
        &mut self,
        batch: &[PostprocessRequest<'_>],
        layout: &BatchLayout,
        keep_class_maps: bool,
    ) -> Result<Vec<GpuMaps>, GpuFailure> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(GpuFailure::new("the GPU device was lost or reported an error earlier", true));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = layout.params_words();
        self.ensure_buffers(&layout.sizes, params.len());
        let Some(buffers) = &self.buffers else {
            return Err(GpuFailure::new("buffers missing", true));
        };
        self.queue.write_buffer(&buffers.params, 0, bytemuck::cast_slice(&params));
        self.queue.write_buffer(&buffers.consts, 0, bytemuck::cast_slice(&layout.consts));
        for (r, slot) in batch.iter().zip(&layout.slots) {
            let f = r.features;
            self.queue.write_buffer(&buffers.feats, 4 * slot.params.feat_off as u64, bytemuck::cast_slice(&f.patches));
        }

        let images = layout.slots.len() as u32;
        let max_of =
            |g: fn(&super::layout::Params) -> u32| layout.slots.iter().map(|s| g(&s.params)).max().unwrap_or(0);
        let rows = max_of(|p| p.layers * p.cells).div_ceil(WORKGROUP_1D);
        let cells = max_of(|p| p.cells).div_ceil(WORKGROUP_1D);
        let wx = max_of(|p| p.width).div_ceil(WORKGROUP_2D);
        let wy = max_of(|p| p.height).div_ceil(WORKGROUP_2D);
        let smoothing = layout.slots.first().is_some_and(|s| s.params.radius > 0);

        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("loupe batch") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("postprocess"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &buffers.bind_group, &[]);
            // wgpu orders dispatches that write and read the same storage buffer with barriers.
            let p = &self.pipelines;
            let mut dispatch = |pipeline: &wgpu::ComputePipeline, x: u32, y: u32, z: u32| {
                pass.set_pipeline(pipeline);
                pass.dispatch_workgroups(x, y, z);
            };
            dispatch(&p.normalize_patches, rows, 1, images);
            dispatch(&p.layer_softmax, rows, 1, images);
            dispatch(&p.sum_layers, cells, 1, images);
            dispatch(&p.upsample_anomaly, wx, wy, images);
            if smoothing {
                dispatch(&p.smooth_rows, wx, wy, images);
                dispatch(&p.smooth_columns, wx, wy, images);
            }
            dispatch(&p.classify, wx, wy, images);
            if keep_class_maps {
                dispatch(&p.upsample_classes, wx, wy, images * layout.classes as u32);
            }
        }
        for slot in &layout.slots {
            let (pixels, p) = ((slot.output.width * slot.output.height) as u64, &slot.params);
            let rb = &slot.readback;
            let copy = |e: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, from: u32, to: usize, len: u64| {
                e.copy_buffer_to_buffer(src, 4 * from as u64, &buffers.readback, 4 * to as u64, 4 * len);
            };
            copy(&mut encoder, &buffers.maps, p.map_off, rb.anomaly, pixels);
            copy(&mut encoder, &buffers.types, p.types_off, rb.types, pixels);
            if keep_class_maps {
                copy(&mut encoder, &buffers.class_maps, p.class_off, rb.class_maps, pixels * layout.classes as u64);
            }
        }
        self.queue.submit([encoder.finish()]);
        if std::mem::take(&mut self.lose_after_submit) {
            self.device.destroy();
        }

        let readback_bytes = 4 * layout.sizes.readback as u64;
        let (tx, rx) = mpsc::channel();
        buffers.readback.map_async(wgpu::MapMode::Read, 0..readback_bytes, move |r| {
            let _ = tx.send(r);
        });
        let poll = self.device.poll(wgpu::PollType::wait_indefinitely());
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(scope.pop());
        if let Some(e) = validation.or(oom) {
            return Err(GpuFailure::new(format!("GPU error: {e}"), true));
        }
        poll.map_err(|e| GpuFailure::new(format!("waiting for the GPU: {e}"), true))?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuFailure::new(format!("reading the results back: {e}"), true)),
            Err(_) => return Err(GpuFailure::new("reading the results back: the GPU never finished", true)),
        }
        if self.broken.load(Ordering::SeqCst) {
            buffers.readback.unmap();
            return Err(GpuFailure::new("the GPU device was lost during the batch", true));
        }
        let out = match buffers.readback.get_mapped_range(0..readback_bytes) {
            Ok(view) => {
                let words: &[u32] = bytemuck::cast_slice(&view);
                Ok(layout.slots.iter().map(|slot| unpack(words, slot, layout.classes, keep_class_maps)).collect())
            }
            Err(e) => Err(GpuFailure::new(format!("reading the results back: {e}"), true)),
        };
        buffers.readback.unmap();
        out
    }
}

/// One image's maps out of the read-back words.
fn unpack(words: &[u32], slot: &super::layout::Slot, classes: usize, keep_class_maps: bool) -> GpuMaps {
    let (w, h) = (slot.output.width, slot.output.height);
    let pixels = w * h;
    let floats = |at: usize, n: usize| words[at..at + n].iter().map(|&b| f32::from_bits(b)).collect::<Vec<f32>>();
    let anomaly = ScoreMap { width: w, height: h, data: floats(slot.readback.anomaly, pixels) };
    // Type ids are below the class count, itself below u16::MAX (checked before the batch).
    let pixel_types = words[slot.readback.types..slot.readback.types + pixels].iter().map(|&t| t as u16).collect();
    let class_maps = if keep_class_maps {
        (0..classes)
            .map(|k| ScoreMap { width: w, height: h, data: floats(slot.readback.class_maps + k * pixels, pixels) })
            .collect()
    } else {
        Vec::new()
    };
    GpuMaps { anomaly, pixel_types, class_maps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    /// The kernels parse and validate with wgpu's own shader compiler (naga), GPU or not; the bindings match `BINDINGS`.
    #[test]
    fn kernels_validate_without_a_gpu() {
        let module = naga::front::wgsl::parse_str(include_str!("kernels.wgsl")).unwrap_or_else(|e| {
            panic!("kernels.wgsl: {}", e.emit_to_string(include_str!("kernels.wgsl")));
        });
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
            .validate(&module)
            .unwrap_or_else(|e| panic!("kernels.wgsl does not validate: {e:?}"));
        for (i, &(read_only, name)) in BINDINGS.iter().enumerate() {
            let var = module
                .global_variables
                .iter()
                .map(|(_, v)| v)
                .find(|v| v.binding.as_ref().is_some_and(|b| b.group == 0 && b.binding == i as u32))
                .unwrap_or_else(|| panic!("binding {i} ({name}) missing from kernels.wgsl"));
            assert_eq!(var.name.as_deref(), Some(name), "binding {i}");
            let access = match var.space {
                naga::AddressSpace::Storage { access } => access,
                other => panic!("binding {i}: {other:?}"),
            };
            assert_eq!(!access.contains(naga::StorageAccess::STORE), read_only, "binding {i} ({name}) access");
        }
        let entries: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(entries.len(), 8, "{entries:?}");
    }
}
