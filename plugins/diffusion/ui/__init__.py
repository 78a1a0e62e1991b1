"""The diffusion plugin's Qt panel: a layered canvas editor and a training page. Never imports
torch at module level and never computes anything heavy: sampling and training are jobs."""
